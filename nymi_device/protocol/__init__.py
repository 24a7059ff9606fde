"""Wire formats shared by the host side and the emulated band: pure, bytes in, objects out."""

#: Log level for raw traffic (each frame, datagram or APDU as hex), below DEBUG.
TRAFFIC = 5
