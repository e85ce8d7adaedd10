"""WanPod emulators."""
