#!/bin/bash
# The original assembly commands (see create_gif.slurm for the three changes).
# With BENCH_TIMES set, each step's wall time is written to stderr as "TIME step s".
step() {
    local name=$1 began=$EPOCHREALTIME
    shift
    "$@"
    [[ -z ${BENCH_TIMES:-} ]] || awk -v a="$began" -v b="$EPOCHREALTIME" -v n="$name" 'BEGIN { printf "TIME %s %.3f\n", n, b - a }' >&2
}
ffmpeg=$("${VOLCANO_PYTHON:-python3}" -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())")
step encode_mp4 "$ffmpeg" -y -loglevel error -framerate 25 -i images/image%d.png -r 30 -b 5000k volcano.mp4
step encode_gif "$ffmpeg" -y -loglevel error -i volcano.mp4 -loop 0 -vf scale=400:240 volcano.gif
rm volcano.mp4
step archive tar czvf output/archives/volcano-images-"$(date +%m-%d-%Y.%H.%M.%S)".tar.gz images/*.png > /dev/null
cd images
rm -rf ./*.png
