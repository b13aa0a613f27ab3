"""hcga: Python binding of libhcga, the C API of the HCGA person
re-identification model (include/hcga/hcga.h; man 3 hcga).

It is pure Python over the installed shared library through ctypes: nothing
is compiled.  Images go in as NumPy uint8 arrays (H x W x 3, RGB, any size:
resizing and normalisation happen inside the library, exactly as `hcga test`
does) or as file names; features come out as NumPy arrays.

    import hcga
    with hcga.Context(threads=2) as ctx:
        model = ctx.load("run/checkpoint.safetensors")
        query = model.extract_files(["query/0001_c1_0.jpg"])   # hcga.Features
        gallery = model.index(sorted(glob.glob("gallery/*.jpg")))
        index, dist = model.search(query, gallery, k=5)

The library is found through $HCGA_LIBRARY (a path or a name), else
ctypes.util.find_library("hcga"), else "libhcga.so.0".  Backend plugins are
looked for in $HCGA_PLUGIN_PATH, then in the installed plugin directory.

Every failure raises HcgaError, whose `code` is a Result and whose `message`
is the library's one-line message (hcga_context_error).  A Context and
everything made from it may be used by one thread at a time; this binding
serialises calls on one context with a lock, so sharing one between Python
threads is safe (but not parallel): use one Context per thread for that.
"""

import ctypes
import ctypes.util
import enum
import os
import threading
import weakref
from collections import namedtuple

import numpy as np

__all__ = [
    "Context",
    "Features",
    "Gallery",
    "HcgaError",
    "Info",
    "Model",
    "Result",
    "library_path",
    "version",
]

__version__ = "0.3.0"

# ---- results and errors ------------------------------------------------------


class Result(enum.IntEnum):
    """hcga_result: what a failed call returned."""

    SUCCESS = 0
    ARGUMENT = 1  # NULL pointer, bad size, bad image, wrong struct_size
    IO = 2  # a file could not be read or written
    FORMAT = 3  # a file is not what it should be (truncated, corrupt)
    MISMATCH = 4  # a file belongs to another model (checkpoint, gallery)
    BACKEND = 5  # the backend could not be opened or failed
    MEMORY = 6  # out of memory


class HcgaError(Exception):
    """A libhcga call failed (or the binding refused an argument first).

    code: the Result; message: the library's one-line message."""

    def __init__(self, code, message):
        try:
            code = Result(code)
        except ValueError:
            pass
        self.code = code
        self.message = message
        name = code.name.lower() if isinstance(code, Result) else "result %d" % code
        super().__init__("%s [%s]" % (message, name))


def _argument_error(message):
    return HcgaError(Result.ARGUMENT, message)


# ---- structs: mirror include/hcga/hcga.h field by field ----------------------

_c_int = ctypes.c_int
_handle = ctypes.c_void_p


class ContextParams(ctypes.Structure):
    """hcga_context_params"""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("backend", ctypes.c_char_p),
        ("device", _c_int),
        ("threads", _c_int),
        ("options", ctypes.c_char_p),
    ]


class ModelParams(ctypes.Structure):
    """hcga_model_params"""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("config", ctypes.c_char_p),
        ("overrides", ctypes.POINTER(ctypes.c_char_p)),
        ("n_overrides", _c_int),
        ("precision", _c_int),  # hcga_precision
        ("batch", _c_int),
        ("flip", _c_int),
    ]


class ModelInfo(ctypes.Structure):
    """hcga_model_info"""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("input_height", _c_int),
        ("input_width", _c_int),
        ("num_parts", _c_int),
        ("dim", _c_int),
        ("global_dim", _c_int),
        ("batch", _c_int),
        ("arm", _c_int),
        ("feat_norm", _c_int),
        ("fingerprint", ctypes.c_uint64),
    ]


class ImageView(ctypes.Structure):
    """hcga_image_view"""

    _fields_ = [
        ("pixels", ctypes.c_void_p),
        ("width", _c_int),
        ("height", _c_int),
        ("channels", _c_int),
        ("stride", ctypes.c_size_t),
    ]


class Embeddings(ctypes.Structure):
    """hcga_embeddings"""

    _fields_ = [
        ("n", _c_int),
        ("num_parts", _c_int),
        ("dim", _c_int),
        ("global_dim", _c_int),
        ("fore", ctypes.POINTER(ctypes.c_float)),
        ("parts", ctypes.POINTER(ctypes.c_float)),
        ("global_", ctypes.POINTER(ctypes.c_float)),
        ("visible", ctypes.POINTER(ctypes.c_uint8)),
    ]


class MatchParams(ctypes.Structure):
    """hcga_match_params"""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("metric", _c_int),  # hcga_metric
        ("feat_norm", _c_int),
        ("rerank", _c_int),
        ("k1", _c_int),
        ("k2", _c_int),
        ("lambda_", ctypes.c_double),
    ]


_PRECISIONS = {"f32": 0, "bf16": 1, "f16": 2}
_METRICS = {"arm": 0, "global": 1}

# ---- the library -------------------------------------------------------------

_P = ctypes.POINTER
_SIGNATURES = {
    "hcga_version": (_c_int, []),
    "hcga_version_string": (ctypes.c_char_p, []),
    "hcga_result_string": (ctypes.c_char_p, [_c_int]),
    "hcga_context_default_params": (ContextParams, []),
    "hcga_context_new": (_c_int, [_P(ContextParams), _P(_handle)]),
    "hcga_context_free": (None, [_handle]),
    "hcga_context_error": (ctypes.c_char_p, [_handle]),
    "hcga_context_backend": (_c_int, [_handle, _P(ctypes.c_char_p), _P(ctypes.c_char_p)]),
    "hcga_model_default_params": (ModelParams, []),
    "hcga_model_load": (_c_int, [_handle, ctypes.c_char_p, _P(ModelParams), _P(_handle)]),
    "hcga_model_free": (None, [_handle]),
    "hcga_model_get_info": (_c_int, [_handle, _P(ModelInfo)]),
    "hcga_extract": (_c_int, [_handle, _P(ImageView), _c_int, _P(Embeddings), _c_int]),
    "hcga_extract_files": (_c_int, [_handle, _P(ctypes.c_char_p), _c_int, _P(Embeddings), _c_int]),
    "hcga_match_default_params": (MatchParams, []),
    "hcga_distances": (_c_int, [_handle, _P(Embeddings), _P(Embeddings), _P(MatchParams), _P(ctypes.c_float)]),
    "hcga_search": (
        _c_int,
        [_handle, _P(Embeddings), _P(Embeddings), _P(MatchParams), _c_int, _P(ctypes.c_int32), _P(ctypes.c_float)],
    ),
    "hcga_gallery_save": (_c_int, [_handle, ctypes.c_char_p, _P(Embeddings), _P(ctypes.c_char_p)]),
    "hcga_gallery_load": (_c_int, [_handle, ctypes.c_char_p, _P(_handle)]),
    "hcga_gallery_embeddings": (_P(Embeddings), [_handle]),
    "hcga_gallery_name": (ctypes.c_char_p, [_handle, _c_int]),
    "hcga_gallery_search": (
        _c_int,
        [_handle, _P(Embeddings), _P(MatchParams), _c_int, _P(ctypes.c_int32), _P(ctypes.c_float)],
    ),
    "hcga_gallery_free": (None, [_handle]),
}

_lib = None
_lib_path = None
_lib_lock = threading.Lock()


def _library():
    """The loaded libhcga, declared and checked against these structs."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is None:
            name = os.environ.get("HCGA_LIBRARY") or ctypes.util.find_library("hcga") or "libhcga.so.0"
            try:
                lib = ctypes.CDLL(name)
            except OSError as e:
                raise OSError(
                    "hcga: cannot load libhcga (%s): %s; install hcga (make install) or set "
                    "HCGA_LIBRARY to the path of libhcga.so.0" % (name, e)
                ) from None
            for fn, (restype, argtypes) in _SIGNATURES.items():
                f = getattr(lib, fn)
                f.restype = restype
                f.argtypes = argtypes
            # a library built from another header would refuse our structs: say so now
            for fn, cls in (
                ("hcga_context_default_params", ContextParams),
                ("hcga_model_default_params", ModelParams),
                ("hcga_match_default_params", MatchParams),
            ):
                got = getattr(lib, fn)().struct_size
                if got != ctypes.sizeof(cls):
                    raise OSError(
                        "hcga: %s (libhcga %s) has a %d-byte %s, this binding (hcga %s) a %d-byte one: "
                        "install the binding that matches the library"
                        % (name, lib.hcga_version_string().decode(), got, cls.__doc__, __version__, ctypes.sizeof(cls))
                    )
            _lib, _lib_path = lib, name
    return _lib


def library_path():
    """The name or path libhcga was loaded from."""
    _library()
    return _lib_path


def version():
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _library().hcga_version_string().decode()


def _text(b):
    return b.decode("utf-8", "replace") if b else ""


def _path(p):
    b = os.fsencode(p)
    if b"\0" in b:
        raise _argument_error("path %r contains a NUL byte" % (p,))
    return b


# ---- features ----------------------------------------------------------------


def _ptr(a, ctype):
    return a.ctypes.data_as(ctypes.POINTER(ctype))


class Features:
    """Features of n images, as hcga_embeddings holds them:

    fore     float32 [n, dim]             BN'ed foreground feature
    parts    float32 [n, num_parts, dim]  BN'ed part features
    global_  float32 [n, global_dim]      BN'ed global feature (also f["global"])
    visible  uint8   [n, num_parts]       1 when the part was predicted somewhere

    len(f) is n; f[rows] selects rows (an int, a slice, an index array);
    f["fore"] etc. name an array."""

    __slots__ = ("fore", "parts", "global_", "visible")
    _NAMES = {"fore": "fore", "parts": "parts", "global": "global_", "global_": "global_", "visible": "visible"}

    def __init__(self, fore, parts, global_, visible):
        self.fore = np.ascontiguousarray(fore, dtype=np.float32)
        self.parts = np.ascontiguousarray(parts, dtype=np.float32)
        self.global_ = np.ascontiguousarray(global_, dtype=np.float32)
        v = np.asarray(visible)
        self.visible = v if v.dtype == np.uint8 and v.flags.c_contiguous else np.ascontiguousarray(v != 0, np.uint8)
        f, p, g, v = self.fore, self.parts, self.global_, self.visible
        if (
            f.ndim != 2
            or p.ndim != 3
            or g.ndim != 2
            or v.ndim != 2
            or not (len(f) == len(p) == len(g) == len(v))
            or p.shape[1] != v.shape[1]
            or p.shape[2] != f.shape[1]
        ):
            raise _argument_error(
                "Features: shapes fore %s, parts %s, global %s, visible %s do not fit "
                "[n, dim], [n, parts, dim], [n, global_dim], [n, parts]" % (f.shape, p.shape, g.shape, v.shape)
            )

    @classmethod
    def empty(cls, n, num_parts, dim, global_dim):
        """Zeroed features of n rows."""
        return cls(
            np.zeros((n, dim), np.float32),
            np.zeros((n, num_parts, dim), np.float32),
            np.zeros((n, global_dim), np.float32),
            np.zeros((n, num_parts), np.uint8),
        )

    @classmethod
    def concatenate(cls, items):
        """The rows of several Features, in order."""
        items = list(items)
        return cls(*(np.concatenate([getattr(x, a) for x in items]) for a in cls.__slots__))

    def __len__(self):
        return len(self.fore)

    def __getitem__(self, key):
        if isinstance(key, str):
            return getattr(self, self._NAMES[key])
        rows = np.arange(len(self))[key]
        rows = np.atleast_1d(rows)
        return Features(self.fore[rows], self.parts[rows], self.global_[rows], self.visible[rows])

    def as_dict(self):
        """{"fore", "parts", "global", "visible"} -> the arrays."""
        return {"fore": self.fore, "parts": self.parts, "global": self.global_, "visible": self.visible}

    def __repr__(self):
        return "Features(n=%d, num_parts=%d, dim=%d, global_dim=%d)" % (
            len(self),
            self.parts.shape[1],
            self.fore.shape[1],
            self.global_.shape[1],
        )

    def _c(self):
        """An hcga_embeddings over these arrays (valid while self lives)."""
        return Embeddings(
            len(self),
            self.parts.shape[1],
            self.fore.shape[1],
            self.global_.shape[1],
            _ptr(self.fore, ctypes.c_float),
            _ptr(self.parts, ctypes.c_float),
            _ptr(self.global_, ctypes.c_float),
            _ptr(self.visible, ctypes.c_uint8),
        )


def _features_of(x):
    if isinstance(x, Gallery):
        return x.features
    if isinstance(x, Features):
        return x
    raise _argument_error("expected hcga.Features or hcga.Gallery, got %s" % type(x).__name__)


def _match_params(lib, metric, feat_norm, rerank=False, k1=None, k2=None, lambda_value=None):
    p = lib.hcga_match_default_params()
    if metric is not None:
        if metric not in _METRICS:
            raise _argument_error("metric %r: give 'arm' or 'global'" % (metric,))
        p.metric = _METRICS[metric]
    if feat_norm is not None:
        p.feat_norm = int(bool(feat_norm))
    p.rerank = int(bool(rerank))
    if k1 is not None:
        p.k1 = k1
    if k2 is not None:
        p.k2 = k2
    if lambda_value is not None:
        p.lambda_ = lambda_value
    return p


# ---- context -----------------------------------------------------------------


class Context:
    """An open backend (hcga_context): Context(backend="cpu", device=0,
    threads=0 (all cores), options="key=value,..." as --backend-opts).

    Models load on it (Context.load); close() (or the end of a with block)
    closes them, and the galleries loaded with them, too."""

    def __init__(self, backend="cpu", device=0, threads=0, options=None):
        self._handle = None
        lib = _library()
        self._lib = lib
        self._lock = threading.RLock()
        self._children = weakref.WeakSet()  # models and loaded galleries: freed first
        p = lib.hcga_context_default_params()
        p.backend = backend.encode()
        p.device = device
        p.threads = threads
        p.options = options.encode() if options else None
        h = _handle()
        r = lib.hcga_context_new(ctypes.byref(p), ctypes.byref(h))
        if r != Result.SUCCESS:
            message = _text(lib.hcga_context_error(h))
            lib.hcga_context_free(h)
            raise HcgaError(r, message)
        self._handle = h

    def _call(self, fn, *args):
        """fn(*args) under the lock; a failure raises with the context's message."""
        with self._lock:
            if not self._handle:
                raise _argument_error("the hcga.Context is closed")
            r = fn(*args)
            if r != Result.SUCCESS:
                raise HcgaError(r, _text(self._lib.hcga_context_error(self._handle)) or _text(
                    self._lib.hcga_result_string(r)))

    @property
    def backend(self):
        """(backend name, device name), e.g. ("cpu", "CPU x2 (OpenBLAS 0.3.21)")."""
        name, device = ctypes.c_char_p(), ctypes.c_char_p()
        self._call(self._lib.hcga_context_backend, self._handle, ctypes.byref(name), ctypes.byref(device))
        return _text(name.value), _text(device.value)

    def load(self, weights, **kwargs):
        """Model(weights, self, **kwargs)."""
        return Model(weights, self, **kwargs)

    def distances(self, query, gallery, metric="arm", feat_norm=True, rerank=False, k1=None, k2=None,
                  lambda_value=None):
        """hcga_distances: float32 [len(query), len(gallery)], smaller is more
        similar, exactly as `hcga test` ranks.  metric "arm" (foreground and
        parts visible in both: minus the similarity) or "global" (squared
        Euclidean, L2-normalised first when feat_norm); rerank: k-reciprocal
        re-ranking with k1, k2, lambda_value (library defaults 20, 6, 0.3)."""
        q, g = _features_of(query), _features_of(gallery)
        p = _match_params(self._lib, metric, feat_norm, rerank, k1, k2, lambda_value)
        dist = np.empty((len(q), len(g)), np.float32)
        qc, gc = q._c(), g._c()
        self._call(self._lib.hcga_distances, self._handle, ctypes.byref(qc), ctypes.byref(gc), ctypes.byref(p),
                   _ptr(dist, ctypes.c_float))
        return dist

    def close(self):
        """Free the context and its models (also done when it is collected)."""
        with self._lock:
            for child in list(self._children):
                child.close()
            if self._handle:
                self._lib.hcga_context_free(self._handle)
                self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()


# ---- model -------------------------------------------------------------------

Info = namedtuple(
    "Info", "input_height input_width num_parts dim global_dim batch arm feat_norm fingerprint"
)
Info.__doc__ = """hcga_model_info: the input size images are resized to, the feature
sizes, images per forward pass, the model's default matching (arm: ARM
rather than global; feat_norm: global features L2-normalised) and the
fingerprint galleries carry."""


class Model:
    """A checkpoint loaded for inference (hcga_model).

    Model(weights, context=None, config=None, overrides=None,
          precision="f32", batch=0, flip=False)
    weights: a checkpoint of `hcga train` (or a converted reference state
    dict, then config is needed); overrides: {KEY: VALUE} or [(KEY, VALUE)]
    as on the hcga command line; precision "f32", "bf16" or "f16"; batch:
    images per forward pass (0: TEST.IMS_PER_BATCH); flip: average with the
    mirrored image.  Without a context the model opens its own (cpu, all
    cores) and closes it with itself."""

    def __init__(self, weights, context=None, config=None, overrides=None, precision="f32", batch=0, flip=False):
        self._handle = None
        self._own_context = context is None
        self.context = Context() if context is None else context
        lib = self._lib = self.context._lib
        p = lib.hcga_model_default_params()
        if config is not None:
            p.config = _path(config)
        pairs = list(overrides.items()) if isinstance(overrides, dict) else list(overrides or [])
        flat = []
        for pair in pairs:
            if len(pair) != 2:
                raise _argument_error("overrides: give KEY, VALUE pairs, not %r" % (pair,))
            flat += [str(pair[0]).encode(), str(pair[1]).encode()]
        over = (ctypes.c_char_p * max(len(flat), 1))(*flat)
        p.overrides = ctypes.cast(over, ctypes.POINTER(ctypes.c_char_p))
        p.n_overrides = len(pairs)
        if precision not in _PRECISIONS:
            raise _argument_error("precision %r: give 'f32', 'bf16' or 'f16'" % (precision,))
        p.precision = _PRECISIONS[precision]
        p.batch = batch
        p.flip = int(bool(flip))
        h = _handle()
        try:
            self.context._call(lib.hcga_model_load, self.context._handle, _path(weights), ctypes.byref(p),
                               ctypes.byref(h))
        except BaseException:
            if self._own_context:
                self.context.close()
            raise
        self._handle = h
        self.context._children.add(self)
        info = ModelInfo()
        self._call(lib.hcga_model_get_info, h, ctypes.byref(info))
        if info.struct_size != ctypes.sizeof(ModelInfo):
            self.close()
            raise OSError("hcga: libhcga's hcga_model_info is %d bytes, this binding's %d"
                          % (info.struct_size, ctypes.sizeof(ModelInfo)))
        self.info = Info(
            info.input_height,
            info.input_width,
            info.num_parts,
            info.dim,
            info.global_dim,
            info.batch,
            bool(info.arm),
            bool(info.feat_norm),
            info.fingerprint,
        )

    def _call(self, fn, *args):
        with self.context._lock:
            if not self._handle:
                raise _argument_error("the hcga.Model is closed")
            self.context._call(fn, *args)

    def _empty(self, n):
        i = self.info
        return Features.empty(n, i.num_parts, i.dim, i.global_dim)

    def extract(self, images):
        """hcga_extract: Features of images, each an H x W x 3 uint8 RGB array
        of any size (a list, an N x H x W x 3 array, or one H x W x 3 array).
        Arrays whose rows are strided (crops of a larger image) are read in
        place; others are copied to C order first."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        arrays = []
        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.dtype != np.uint8:
                raise _argument_error("image %d: dtype %s; give 8-bit RGB (uint8, H x W x 3)" % (i, a.dtype))
            if a.ndim == 2:  # gray: the library names the channel count
                a = a[:, :, None]
            if a.ndim != 3:
                raise _argument_error("image %d: shape %s; give H x W x 3" % (i, a.shape))
            h, w, c = a.shape
            if not (a.strides[2] == 1 and (w <= 1 or a.strides[1] == c) and (h <= 1 or a.strides[0] >= c * w)):
                a = np.ascontiguousarray(a)
            arrays.append(a)
        views = (ImageView * max(len(arrays), 1))()
        for v, a in zip(views, arrays):
            h, w, c = a.shape
            v.pixels = a.ctypes.data
            v.width, v.height, v.channels = w, h, c
            v.stride = a.strides[0] if h > 1 else 0
        out = self._empty(len(arrays))
        e = out._c()
        self._call(self._lib.hcga_extract, self._handle, views, len(arrays), ctypes.byref(e), 0)
        return out

    def extract_files(self, paths):
        """hcga_extract_files: Features of JPEG or PNG files (one path or a
        list), decoded as the dataset reader does."""
        if isinstance(paths, (str, bytes, os.PathLike)):
            paths = [paths]
        enc = [_path(p) for p in paths]
        arr = (ctypes.c_char_p * max(len(enc), 1))(*enc)
        out = self._empty(len(enc))
        e = out._c()
        self._call(self._lib.hcga_extract_files, self._handle, arr, len(enc), ctypes.byref(e), 0)
        return out

    def index(self, paths, names=None):
        """A Gallery of image files: their features, named by names (default:
        the paths as given)."""
        paths = [paths] if isinstance(paths, (str, bytes, os.PathLike)) else list(paths)
        names = [os.fsdecode(p) for p in paths] if names is None else list(names)
        return Gallery(self.extract_files(paths), names)

    def distances(self, query, gallery, metric=None, feat_norm=None, **kwargs):
        """Context.distances with the model's default matching (info.arm,
        info.feat_norm) unless metric / feat_norm are given."""
        metric = metric or ("arm" if self.info.arm else "global")
        feat_norm = self.info.feat_norm if feat_norm is None else feat_norm
        return self.context.distances(query, gallery, metric, feat_norm, **kwargs)

    def search(self, query, gallery, k=10, metric=None, feat_norm=None):
        """hcga_search: the k nearest gallery rows of each query row, as
        (index int32 [nq, k], dist float32 [nq, k]) in ascending distance
        (ties by gallery row); past the gallery's end, -1 and inf.  The
        gallery is scored in blocks with the backend's GEMM.  metric and
        feat_norm default to the model's (info.arm, info.feat_norm).  A
        Gallery loaded from a file with this model is searched with
        hcga_gallery_search, which keeps its rows on the backend between
        calls (same results)."""
        q, g = _features_of(query), _features_of(gallery)
        metric = metric or ("arm" if self.info.arm else "global")
        feat_norm = self.info.feat_norm if feat_norm is None else feat_norm
        p = _match_params(self._lib, metric, feat_norm)
        if k < 1:
            raise _argument_error("search: k is %d; give k >= 1" % k)
        index = np.empty((len(q), k), np.int32)
        dist = np.empty((len(q), k), np.float32)
        qc = q._c()
        if isinstance(gallery, Gallery) and gallery._handle and gallery._model is self:
            self._call(self._lib.hcga_gallery_search, gallery._handle, ctypes.byref(qc), ctypes.byref(p), k,
                       _ptr(index, ctypes.c_int32), _ptr(dist, ctypes.c_float))
        else:
            gc = g._c()
            self._call(self._lib.hcga_search, self._handle, ctypes.byref(qc), ctypes.byref(gc), ctypes.byref(p), k,
                       _ptr(index, ctypes.c_int32), _ptr(dist, ctypes.c_float))
        return index, dist

    def close(self):
        """Free the model (and its own context, if it opened one)."""
        with self.context._lock:
            if self._handle:
                self._lib.hcga_model_free(self._handle)
                self._handle = None
        if self._own_context:
            self._own_context = False
            self.context.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()


# ---- galleries ---------------------------------------------------------------


class Gallery:
    """Features with one name per row, kept in a gallery file
    (hcga_gallery_save / hcga_gallery_load; `hcga index` writes the same
    files).  A file remembers the model's fingerprint: loading it with
    another model raises HcgaError(Result.MISMATCH).

    features and names are NumPy / Python copies.  A gallery from load()
    also keeps the library's gallery for Model.search (hcga_gallery_search)
    until close() or the close of its model's context."""

    def __init__(self, features, names):
        self._handle = None
        self._model = None
        self.features = _features_of(features)
        self.names = [str(n) for n in names]
        if len(self.names) != len(self.features):
            raise _argument_error("Gallery: %d names for %d rows" % (len(self.names), len(self.features)))

    def __len__(self):
        return len(self.features)

    def __repr__(self):
        return "Gallery(%d rows)" % len(self)

    def save(self, model, path):
        """Write the gallery for model (its fingerprint is stamped in)."""
        enc = []
        for n in self.names:
            b = n.encode("utf-8")
            if b"\0" in b:
                raise _argument_error("gallery name %r contains a NUL" % n)
            enc.append(b)
        names = (ctypes.c_char_p * max(len(enc), 1))(*enc)
        e = self.features._c()
        model._call(model._lib.hcga_gallery_save, model._handle, _path(path), ctypes.byref(e), names)

    @classmethod
    def load(cls, model, path):
        """Read a gallery file written for model."""
        lib = model._lib
        h = _handle()
        model._call(lib.hcga_gallery_load, model._handle, _path(path), ctypes.byref(h))
        try:
            e = lib.hcga_gallery_embeddings(h).contents
            out = Features.empty(e.n, e.num_parts, e.dim, e.global_dim)
            for name, src in (("fore", e.fore), ("parts", e.parts), ("global_", e.global_), ("visible", e.visible)):
                dst = getattr(out, name)
                if dst.size:
                    ctypes.memmove(dst.ctypes.data, src, dst.nbytes)
            names = [_text(lib.hcga_gallery_name(h, i)) for i in range(e.n)]
            g = cls(out, names)
        except BaseException:
            lib.hcga_gallery_free(h)
            raise
        g._handle, g._model, g._lib = h, model, lib
        model.context._children.add(g)
        return g

    def close(self):
        """Free the library's copy (features and names stay)."""
        if self._handle:
            with self._model.context._lock:
                self._lib.hcga_gallery_free(self._handle)
                self._handle = None

    def __del__(self):
        if getattr(self, "_handle", None):
            self.close()
