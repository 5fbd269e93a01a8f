# Copy what the benchmark wrote so far under $OUT (at most 8 files come back): the big adapters stay.
mkdir -p $OUT
cp /tmp/gpu-run.log $OUT/ 2>/dev/null
for f in results.json report.md recall.png retention.png; do cp /tmp/gpu-run/$f $OUT/ 2>/dev/null; done
tar czf $OUT/gpu-run.tgz --exclude='*.safetensors' --exclude='*.bin' -C /tmp gpu-run 2>/dev/null
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv > $OUT/gpu.txt 2>/dev/null
ls -la $OUT; cat /tmp/gpu-run.rc 2>/dev/null
