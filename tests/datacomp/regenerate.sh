#!/usr/bin/env bash
# Makes expected.json, what img2dataset gives for DataComp's recipe on the rows
# of rows.json: the tables written by pyarrow (snappy, three files in a folder),
# served by a local `grab serve`, downloaded by img2dataset with DataComp's
# arguments (download_upstream.py: image_size 512, keep_ratio_largest,
# resize_only_if_bigger, webdataset, caption_col text, bbox_col face_bboxes,
# save_additional_columns [uid], oom_shard_count 8, retries 2), 3 samples a
# shard so that shards continue across the files. tests/it/recipes.rs runs grab
# the same way and compares its output to the file (CI has no img2dataset).
#
#   tests/datacomp/regenerate.sh
#
# VENV: a virtual environment with img2dataset (default target/bench-dataset/venv,
# made by bench/dataset.sh); GRAB: the grab binary (default target/release/grab).
# The gallery's images are part of the expectation (their sha256): regenerate
# after changing how the gallery draws or encodes.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
venv=${VENV:-$here/target/bench-dataset/venv}
grab=${GRAB:-$here/target/release/grab}
source "$here/bench/common.sh"
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill $server 2>/dev/null; rm -rf "$work"' EXIT
start_grab_serve "$work/serve.log" --quiet
"$venv/bin/python" - "$here/tests/datacomp" "$base" "$work" "$venv/bin/img2dataset" <<'PYTHON'
import glob, json, os, subprocess, sys, tarfile

import pyarrow as pa
import pyarrow.parquet as pq

folder, base, work, img2dataset = sys.argv[1:]
files = json.load(open(os.path.join(folder, "rows.json")))["files"]
tables = os.path.join(work, "tables")
os.makedirs(tables)
for number, rows in enumerate(files):
    table = pa.table({
        "url": [base + row["path"] for row in rows],
        "text": [row["text"] for row in rows],
        "uid": [row["uid"] for row in rows],
        "face_bboxes": pa.array([row["face_bboxes"] for row in rows], type=pa.list_(pa.list_(pa.float64()))),
    })
    pq.write_table(table, os.path.join(tables, f"part-{number:05d}.parquet"))  # snappy, pyarrow's default
output = os.path.join(work, "output")
arguments = [
    "--url_list", tables, "--input_format", "parquet", "--output_folder", output,
    "--output_format", "webdataset", "--url_col", "url", "--caption_col", "text",
    "--bbox_col", "face_bboxes", "--save_additional_columns", '["uid"]',
    "--oom_shard_count", "8", "--number_sample_per_shard", "3",
    "--image_size", "512", "--resize_mode", "keep_ratio_largest", "--resize_only_if_bigger", "True",
    "--retries", "2", "--processes_count", "1", "--thread_count", "4", "--enable_wandb", "False",
]
subprocess.run([img2dataset] + arguments, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def local(value):
    return value[len(base):] if isinstance(value, str) and value.startswith(base) else value

shards = {}
for path in sorted(glob.glob(os.path.join(output, "*.tar"))):
    members, samples = [], {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            members.append(member.name)
            if member.name.endswith(".json"):
                meta = json.load(tar.extractfile(member))
                samples[member.name[:-5]] = {key: local(value) for key, value in meta.items()}
    shards[os.path.basename(path)] = {"members": members, "samples": samples}
statuses = {}
for path in sorted(glob.glob(os.path.join(output, "*.parquet"))):
    for row in pq.read_table(path).to_pylist():
        statuses[row["key"]] = row["status"]
expected = {
    "made_by": "tests/datacomp/regenerate.sh with img2dataset " + subprocess.run(
        [os.path.join(os.path.dirname(img2dataset), "pip"), "show", "img2dataset"],
        capture_output=True, text=True).stdout.split("Version: ")[1].split()[0],
    "img2dataset_arguments": [argument for argument in arguments if not argument.startswith(work)],
    "files": sorted(name for name in os.listdir(output) if name[0].isdigit()),
    "shards": shards,
    "statuses": statuses,
}
with open(os.path.join(folder, "expected.json"), "w") as out:
    json.dump(expected, out, indent=1, ensure_ascii=False)
    out.write("\n")
PYTHON
echo "wrote $here/tests/datacomp/expected.json" >&2
