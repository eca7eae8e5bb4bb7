"""LASER attention control for ComfyUI's SD1.x/SD2.x UNet (no ComfyUI import at import time)."""
