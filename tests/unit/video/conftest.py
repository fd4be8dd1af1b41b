from video_formats import avenue_root, shanghaitech_root, ucsd_jpeg, ucsd_official

__all__ = ["avenue_root", "shanghaitech_root", "ucsd_jpeg", "ucsd_official"]
