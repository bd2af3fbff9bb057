"""docstream's performance benchmark: `python -m bench [--quick] [--json PATH]`.

Every row runs in its own subprocess on the same JSON Lines input (the AG News test split plus
long documents made of 8 concatenated posts) and is measured for docs/s and for the peak
resident memory of its whole process tree. `bench/gpu.sh` runs the model-side rows on CUDA.
"""
