"""What the assembly job runs: check the frames, write and verify the MP4, the GIF
and the archive, then delete the frames (``assembler``, the steps; ``ffmpeg_commands``,
``outputs``, ``archive``, ``verify``, ``recording``, ``latency``)."""
