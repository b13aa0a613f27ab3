# backends/cuda/cuda.mk
