def cleanup_control():
    raise RuntimeError("cleanup control")
