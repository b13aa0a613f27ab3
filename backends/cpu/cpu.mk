# backends/cpu/cpu.mk
