"""Video in, video out: a clip read from its container's header, painted frame by frame with
shared statistics and a grid that follows the camera, and written back as MP4 with its sound."""
