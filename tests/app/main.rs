//! The app's tests: the `voxboard` binary as a user runs it, the egui app, sound devices.

mod api;
mod audio_devices;
mod board_persistence;
mod cli;
mod cli_audio;
mod entrance;
mod prereq;
mod shaping;
mod sink;
mod ui_board;
mod ui_connections;
mod ui_e2e;
mod ui_gateway_trust;
mod ui_interactions;
mod ui_routing;
mod ui_settings;
mod ui_shaping;
mod ui_support;
