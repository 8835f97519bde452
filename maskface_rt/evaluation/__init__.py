"""Evaluation of a generator: mask consistency, diversity, FID/KID and backend parity (``maskface eval``).

Every network these metrics need (Inception, AlexNet + LPIPS heads, BiSeNet) loads from a local
file in ``--weights-dir``, checked by sha256; nothing is downloaded. Modules that need torch
import it at their top, so import them only where torch is known to be installed.
"""
