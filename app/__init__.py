"""WanPod app."""
