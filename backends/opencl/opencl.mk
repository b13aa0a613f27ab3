# backends/opencl/opencl.mk
