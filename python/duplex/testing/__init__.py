"""Helpers for testing with duplex: a headless PulseAudio null sink
(:mod:`duplex.testing.audio_server`), so real-device code paths run without a sound card.

Nothing here is imported by the engine itself; it is standard library only.
"""
