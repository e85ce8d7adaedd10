"""WanPod workflows."""
