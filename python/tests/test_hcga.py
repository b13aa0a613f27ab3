"""Tests of the hcga Python binding (python/hcga) against the hcga program.

A session fixture makes the synthetic benchmark (`hcga synth`), trains a
tiny model on it for one epoch (`hcga train`) and saves the features of
`hcga test --save-features`; the binding must reproduce the query features
to 1e-6, extract the same features from arrays as from files, rank exactly
as the distance matrix does, keep galleries, and turn bad input into
HcgaError with the library's message.

Environment (tests/check_python.sh sets all of it for make check):
  HCGA_BIN       the hcga program (default: hcga on PATH; skipped if none)
  HCGA_CONFIG    the model config (default: configs/hrnet_tiny.yml of the tree)
  HCGA_LIBRARY, HCGA_PLUGIN_PATH   as for the binding itself
"""

import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

import hcga

THREADS = 2
TOL = 1e-6


def hcga_bin():
    b = os.environ.get("HCGA_BIN") or shutil.which("hcga")
    if not b:
        pytest.skip("no hcga program: set HCGA_BIN (tests/check_python.sh does)")
    return b


def run(*args):
    """Run the hcga program and return its stdout; fail the test with its
    output if it fails."""
    cmd = [hcga_bin(), "--threads", str(THREADS), *map(str, args)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.returncode == 0, "%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:],
                                                          p.stderr[-3000:])
    return p.stdout


def read_safetensors(path):
    """{name: array} of a safetensors file: u64 LE header size, JSON header, data."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    dtypes = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtypes[t["dtype"]]).reshape(t["shape"])
    return out


def split_images(folder):
    """The JPEGs of a dataset folder in the order `hcga test` reads them
    (frontend/data/dataset.c: strcmp of the names without extension)."""
    names = [n for n in os.listdir(folder) if not n.startswith(".") and n.endswith((".jpg", ".JPG", ".jpeg"))]
    names.sort(key=lambda n: os.fsencode(n.rsplit(".", 1)[0]))
    return [os.path.join(folder, n) for n in names]


def write_png(path, img):
    """An 8-bit PNG of an H x W x 3 (RGB) or H x W (gray) uint8 array."""
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    color = 2 if img.ndim == 3 else 0
    raw = b"".join(b"\0" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    Path(path).write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    """The synthetic benchmark, two checkpoints and hcga test's features."""
    root = tmp_path_factory.mktemp("hcga")
    config = os.environ.get("HCGA_CONFIG") or str(Path(__file__).resolve().parents[2] / "configs" / "hrnet_tiny.yml")
    if not os.path.exists(config):
        pytest.skip("no model config %s: set HCGA_CONFIG" % config)
    data = root / "data"
    run("synth", "--out", data, "--ids", 12, "--cams", 2, "--per-cam", 3, "--distractors", 2, "--seed", 3)
    common = ["--config", config, "--data", data, "SOLVER.IMS_PER_BATCH", 8, "DATALOADER.NUM_INSTANCE", 2,
              "SOLVER.MAX_EPOCHS", 1, "SOLVER.EVAL_PERIOD", 100, "CLUSTERING.AL", "band", "TEST.IMS_PER_BATCH", 8]
    run("train", "--output", root / "run", *common)
    run("train", "--output", root / "other", "--seed", 2, "--max-steps", 1, *common)
    ckpt = root / "run" / "checkpoint.safetensors"
    run("test", "--weights", ckpt, "--data", data, "--save-features", root / "features.safetensors")
    return {
        "root": root,
        "checkpoint": str(ckpt),
        "other": str(root / "other" / "checkpoint.safetensors"),
        "features": read_safetensors(root / "features.safetensors"),
        "query": split_images(data / "query"),
        "gallery": split_images(data / "bounding_box_test"),
    }


@pytest.fixture(scope="session")
def context():
    with hcga.Context(threads=THREADS) as ctx:
        yield ctx


@pytest.fixture(scope="session")
def model(bench, context):
    return context.load(bench["checkpoint"])


@pytest.fixture(scope="session")
def query(model, bench):
    return model.extract_files(bench["query"])


@pytest.fixture(scope="session")
def gallery(model, bench):
    return model.index(bench["gallery"], names=[os.path.basename(p) for p in bench["gallery"]])


# ---- the library and the model -----------------------------------------------


def test_library_and_info(context, model, bench):
    assert hcga.version() == hcga.__version__
    name, device = context.backend
    assert name == "cpu" and device
    info = model.info
    assert (info.input_height, info.input_width) == (128, 64)
    assert info.num_parts >= 1 and info.dim > 0 and info.global_dim > 0 and info.batch == 8
    with hcga.Model(bench["other"], context) as other:
        assert other.info.fingerprint != info.fingerprint


# ---- features ---------------------------------------------------------------


@pytest.mark.parametrize("split", ["query", "gallery"])
def test_features_equal_hcga_test(query, gallery, bench, split):
    """Features of the binding vs `hcga test --save-features` (the gallery
    takes several batches of 8)."""
    ref = bench["features"]
    paths = bench[split]
    ours = query if split == "query" else gallery.features
    n = len(paths)
    # the saved identities and cameras confirm the image order
    pids = [int(os.path.basename(p).split("_")[0]) for p in paths]
    cams = [int(os.path.basename(p).split("_")[1][1]) - 1 for p in paths]
    assert ref[split + ".pids"].tolist() == pids and ref[split + ".cams"].tolist() == cams
    assert len(ours) == n and n > 1
    worst = {}
    for name, a in (("fore", ours.fore), ("part", ours.parts), ("global", ours.global_)):
        theirs = ref[split + "." + name]
        assert a.shape == theirs.shape, name
        assert a.dtype == np.float32
        worst[name] = float(np.max(np.abs(a.astype(np.float64) - theirs)))
        assert worst[name] <= TOL, "%s differs from hcga test by %g" % (name, worst[name])
    assert ours.visible.dtype == np.uint8
    np.testing.assert_array_equal(ours.visible, (ref[split + ".vis"] != 0).astype(np.uint8))
    print("\nworst |binding - hcga test| over %d %s images: %s; visible equal" % (
        n, split, ", ".join("%s %.3g" % kv for kv in worst.items())))


def test_views_equal_files(model, tmp_path):
    """hcga_extract of arrays == hcga_extract_files of the same pixels as PNG,
    whatever the arrays' strides; gray PNGs read as RGB."""
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, size=(150, 90, 3), dtype=np.uint8)
    images = [
        rng.integers(0, 256, size=(97, 41, 3), dtype=np.uint8),  # any size: resized inside
        big[10:110, 5:65],  # a crop: rows strided, read in place
        big[:, ::-1],  # mirrored: negative strides, copied first
        np.broadcast_to(np.arange(64, dtype=np.uint8)[None, :, None], (128, 64, 3)),  # zero strides
        big[::2, ::2],  # every other pixel: copied
    ]
    gray = rng.integers(0, 256, size=(60, 30), dtype=np.uint8)
    paths = []
    for i, img in enumerate(images):
        paths.append(str(tmp_path / ("%d.png" % i)))
        write_png(paths[-1], img)
    paths.append(str(tmp_path / "gray.png"))
    write_png(paths[-1], gray)
    images.append(np.repeat(gray[:, :, None], 3, axis=2))
    images = images + images  # 12 images: more than one batch of 8
    paths = paths + paths
    a = model.extract(images)
    b = model.extract_files(paths)
    c = model.extract([np.ascontiguousarray(x) for x in images])
    for x in (b, c):
        for name in ("fore", "parts", "global", "visible"):
            np.testing.assert_allclose(a[name], x[name], rtol=0, atol=TOL, err_msg=name)
    assert len(a) == 12 and np.abs(a.fore[0] - a.fore[1]).max() > 1e-3  # different images differ
    # (an image's features depend on its row in the forward pass by a few 1e-6
    # on the cpu backend, so rows are compared at the same position)
    one = model.extract(images[0])  # one H x W x 3 array is one image
    np.testing.assert_allclose(one.fore, a.fore[:1], rtol=0, atol=TOL)
    batch = model.extract(np.stack([images[0], images[0]]))  # an N x H x W x 3 array
    listed = model.extract([images[0], images[0]])
    for name in ("fore", "parts", "global", "visible"):
        np.testing.assert_array_equal(batch[name], listed[name], err_msg=name)
    assert len(model.extract([])) == 0


# ---- bad input ----------------------------------------------------------------


def expect_error(code, words, fn, *args, **kwargs):
    with pytest.raises(hcga.HcgaError) as e:
        fn(*args, **kwargs)
    assert e.value.code == code, e.value
    for w in words:
        assert w in e.value.message, e.value.message
    return e.value


def test_bad_input(context, model, bench, gallery, tmp_path):
    ok = np.zeros((128, 64, 3), np.uint8)
    expect_error(hcga.Result.ARGUMENT, ["image 1", "float32", "uint8"], model.extract,
                 [ok, np.zeros((128, 64, 3), np.float32)])
    # shape errors are the library's own messages
    expect_error(hcga.Result.ARGUMENT, ["image 0", "4 channels"], model.extract, [np.zeros((128, 64, 4), np.uint8)])
    expect_error(hcga.Result.ARGUMENT, ["1 channels"], model.extract, [np.zeros((128, 64), np.uint8)])
    expect_error(hcga.Result.ARGUMENT, ["size 0x5"], model.extract, [np.zeros((5, 0, 3), np.uint8)])
    missing = str(tmp_path / "missing.jpg")
    expect_error(hcga.Result.IO, [missing], model.extract_files, [bench["query"][0], missing])
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a JPEG at all")
    expect_error(hcga.Result.FORMAT, [str(junk)], model.extract_files, [str(junk)])
    expect_error(hcga.Result.IO, ["missing.safetensors"], context.load, str(tmp_path / "missing.safetensors"))
    expect_error(hcga.Result.FORMAT, [str(junk)], context.load, str(junk))
    expect_error(hcga.Result.BACKEND, ["nosuch"], hcga.Context, backend="nosuch")
    # features of another size
    q = model.extract([ok])
    wrong = hcga.Features(q.fore[:, :-1], q.parts[:, :, :-1], q.global_, q.visible)
    expect_error(hcga.Result.ARGUMENT, ["do not match"], context.distances, wrong, gallery)
    expect_error(hcga.Result.ARGUMENT, ["do not match"], model.search, wrong, gallery)
    expect_error(hcga.Result.ARGUMENT, ["metric"], model.search, q, gallery, metric="cosine")
    expect_error(hcga.Result.ARGUMENT, ["k"], model.search, q, gallery, k=0)
    # a gallery file of another model
    path = str(tmp_path / "g.safetensors")
    gallery.save(model, path)
    other = context.load(bench["other"])
    try:
        expect_error(hcga.Result.MISMATCH, [path, "another model"], hcga.Gallery.load, other, path)
        expect_error(hcga.Result.FORMAT, ["not an hcga gallery"], hcga.Gallery.load, model, bench["checkpoint"])
    finally:
        other.close()
    # the context works after all of it, and no message is left over
    again = model.extract_files(bench["query"][:1])
    assert len(again) == 1
    closed = hcga.Model(bench["checkpoint"])  # a model with its own context
    closed.close()
    expect_error(hcga.Result.ARGUMENT, ["closed"], closed.extract, [ok])


# ---- matching -----------------------------------------------------------------


def reference_distances(q, g, metric, feat_norm=True):
    """The header's formulas in NumPy (float64)."""
    def unit(x):
        n = np.linalg.norm(x, axis=-1, keepdims=True)
        return np.where(n > 1e-6, x / np.where(n > 1e-6, n, 1), 0)

    if metric == "global":
        a, b = q.global_.astype(np.float64), g.global_.astype(np.float64)
        if feat_norm:
            a, b = unit(a), unit(b)
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    fore = unit(q.fore.astype(np.float64)) @ unit(g.fore.astype(np.float64)).T
    s = (1 + fore) / 2
    for k in range(q.parts.shape[1]):
        cos = unit(q.parts[:, k].astype(np.float64)) @ unit(g.parts[:, k].astype(np.float64)).T
        both = q.visible[:, k, None].astype(bool) & g.visible[None, :, k].astype(bool)
        s = s + np.where(both, (1 + cos) / 2, 0)
    return -s


@pytest.mark.parametrize("metric", ["arm", "global"])
def test_distances_follow_the_header(model, query, gallery, metric):
    d = model.distances(query, gallery, metric=metric, feat_norm=True)
    assert d.shape == (len(query), len(gallery)) and d.dtype == np.float32
    np.testing.assert_allclose(d, reference_distances(query, gallery.features, metric), rtol=0, atol=1e-5)
    r = model.distances(query, gallery, metric=metric, rerank=True)
    assert r.shape == d.shape and np.isfinite(r).all() and not np.allclose(r, d)


@pytest.mark.parametrize("metric", ["arm", "global"])
def test_search_order_is_argsort_of_distances(model, query, gallery, metric):
    k = 10
    d = model.distances(query, gallery, metric=metric)
    index, dist = model.search(query, gallery, k=k, metric=metric)
    assert index.shape == dist.shape == (len(query), k) and index.dtype == np.int32
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    rows = np.arange(len(query))[:, None]
    # search scores with a GEMM, distances with hcga test's code: equal to float
    # rounding, so an order may differ only between distances that tie to 1e-5
    np.testing.assert_allclose(dist, d[rows, index], rtol=0, atol=1e-5)
    np.testing.assert_allclose(dist, d[rows, order], rtol=0, atol=1e-5)
    differ = index != order
    assert np.all(np.abs(d[rows, index] - d[rows, order])[differ] <= 1e-5)
    assert differ.sum() <= 2, "search order differs from argsort in %d places" % differ.sum()
    assert (np.diff(dist, axis=1) >= 0).all()
    # k past the gallery's end: -1 and inf
    n = len(gallery)
    index, dist = model.search(query, gallery, k=n + 3, metric=metric)
    assert (index[:, n:] == -1).all() and np.isinf(dist[:, n:]).all()
    assert sorted(index[0, :n].tolist()) == list(range(n))


# ---- galleries ----------------------------------------------------------------


def test_gallery_round_trip(model, query, gallery, tmp_path):
    names = list(gallery.names)
    names[0] = "café ✓ 0.jpg"  # UTF-8 survives
    g = hcga.Gallery(gallery.features, names)
    path = tmp_path / "gallery.safetensors"
    g.save(model, path)
    back = hcga.Gallery.load(model, path)
    try:
        assert back.names == names and len(back) == len(g)
        for name in ("fore", "parts", "global", "visible"):
            np.testing.assert_array_equal(back.features[name], g.features[name], err_msg=name)
        # a loaded gallery searches through hcga_gallery_search: the same results
        for metric in ("arm", "global", "arm"):
            i1, d1 = model.search(query, back, k=5, metric=metric)
            i2, d2 = model.search(query, g, k=5, metric=metric)
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_allclose(d1, d2, rtol=0, atol=1e-6)
    finally:
        back.close()
    sub = g.features[[3, 1, 2]]
    np.testing.assert_array_equal(sub.fore, g.features.fore[[3, 1, 2]])
    assert len(g.features[-1]) == 1


def test_galleries_shared_with_the_hcga_program(model, query, gallery, bench, tmp_path):
    """A gallery of `hcga index` loads here; one saved here is ranked by
    `hcga search` as Model.search ranks it."""
    folder = os.path.dirname(bench["gallery"][0])
    indexed = tmp_path / "indexed.safetensors"
    run("index", "--weights", bench["checkpoint"], "--out", indexed, folder)
    g = hcga.Gallery.load(model, indexed)
    try:
        assert g.names == bench["gallery"]  # the paths, in path order
        for name in ("fore", "parts", "global", "visible"):
            np.testing.assert_allclose(g.features[name], gallery.features[name], rtol=0, atol=TOL, err_msg=name)
    finally:
        g.close()
    saved = tmp_path / "saved.safetensors"
    gallery.save(model, saved)
    out = run("search", "--weights", bench["checkpoint"], "--gallery", saved, "--top", 5, "--json",
              *bench["query"][:3])
    ranked = json.loads(out)["queries"]
    index, dist = model.search(query[:3], gallery, k=5)
    assert [q["query"] for q in ranked] == bench["query"][:3]
    for q, i, d in zip(ranked, index, dist):
        assert [r["name"] for r in q["results"]] == [gallery.names[j] for j in i]
        np.testing.assert_allclose([r["distance"] for r in q["results"]], d, rtol=1e-5, atol=1e-6)
