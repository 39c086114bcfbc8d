"""Trading math shared by the kernel, the executors and the fused kernels: fill rules, market
metadata, margin and funding. Plain functions over numbers; no gridkit.core imports."""
