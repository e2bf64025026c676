"""What the assembly job runs: check the frames, write and verify the MP4, the GIF
and the archive, then delete the frames (``assembler``, ``archive``, ``verify``)."""
