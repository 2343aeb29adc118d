"""facetrack: 68-point facial landmarks by K-way pose classification (Li, Jeni, Ramanan 2018)."""

__version__ = "0.1.0"
