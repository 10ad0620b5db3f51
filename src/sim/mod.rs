//! Discord on loopback: main gateway, voice gateway v8 and UDP media server.
