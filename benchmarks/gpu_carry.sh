#!/usr/bin/env bash
# Assemble .carry/ (git-ignored), the one path the GPU call names in `carry`:
#   .carry/whl/       what the GPU machine lacks, for its Python 3.12: attnlab's own wheel and
#                     benchmarks/gpu_requirements.txt resolved with their dependencies (at
#                     constraints.txt's tested versions where those apply), less every package
#                     benchmarks/gpu_machine_packages.txt says the machine holds;
#   .carry/datasets/  CamVid from ../shared/datasets (or ATTNLAB_DATASETS) at full resolution:
#                     val/ whole, and as many train/ images (by file stem) as the call's 64 MiB
#                     leave beside the working tree and the wheels.
# Prints what it carries and the total against the limit.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LIMIT_KIB=$((62 * 1024))  # 64 MiB a call, less a margin for what changes before the call
SRC=${ATTNLAB_DATASETS:-../shared/datasets}/camvid
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}")
grep -qx '/.carry/' .git/info/exclude 2>/dev/null || echo '/.carry/' >> .git/info/exclude
rm -rf .carry && mkdir -p .carry/whl .carry/datasets/camvid
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$PY" -m pip wheel -q --no-deps -w .carry/whl .
reqs=$(sed 's/ *#.*//' benchmarks/gpu_requirements.txt | grep -v '^$')
# torch and its CUDA libraries are the machine's own (other versions): constrain none of them.
grep -v -E '^(torch|torchvision|nvidia-|triton)' constraints.txt > "$work/constraints"
"$PY" -m pip install -q --dry-run --ignore-installed --target "$work/t" "${TARGET[@]}" \
  -c "$work/constraints" --report "$work/report.json" $reqs 2>&1 | grep -v 'is ignored: it is neither' || true
"$PY" - "$work/report.json" benchmarks/gpu_machine_packages.txt > "$work/missing" <<'PY'
import json, re, sys
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
there = {norm(l.strip()) for l in open(sys.argv[2]) if l.strip() and not l.startswith("#")}
# The machine's opencv-python-headless provides cv2, which mmengine asks for as opencv-python
# (74 MB: more than a call carries).
there.add("opencv-python")
for item in json.load(open(sys.argv[1]))["install"]:
    if norm(item["metadata"]["name"]) not in there:
        print(f"{item['metadata']['name']}=={item['metadata']['version']}")
PY
"$PY" -m pip download -q --no-deps "${TARGET[@]}" -d .carry/whl $(cat "$work/missing") 2>&1 \
  | grep -v 'is ignored: it is neither' || true

[ -d "$SRC/train" ] || { echo "no CamVid at $SRC: set ATTNLAB_DATASETS to the folder holding camvid/" >&2; exit 2; }
cp -r "$SRC/val" "$SRC/valannot" .carry/datasets/camvid/
mkdir -p .carry/datasets/camvid/train .carry/datasets/camvid/trainannot
tree_kib=$(git ls-files -co --exclude-standard -z | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
used=$((tree_kib + $(du -sk .carry | cut -f1)))
taken=0
for image in $(ls "$SRC/train" | sort); do
  stem=${image%.*}
  label=$(ls "$SRC/trainannot/$stem".* 2>/dev/null | head -1)
  [ -n "$label" ] || continue
  size=$(( $(du -k "$SRC/train/$image" | cut -f1) + $(du -k "$label" | cut -f1) ))
  (( used + size <= LIMIT_KIB )) || break
  cp "$SRC/train/$image" .carry/datasets/camvid/train/ && cp "$label" .carry/datasets/camvid/trainannot/
  used=$((used + size)); taken=$((taken + 1))
done
echo "wheels: $(ls .carry/whl | wc -l) ($(du -sh .carry/whl | cut -f1)); CamVid: $taken of $(ls "$SRC/train" | wc -l) train images, $(ls .carry/datasets/camvid/val | wc -l) val"
echo "carried with the working tree: $((used / 1024)) MiB of 64"
