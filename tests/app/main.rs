//! The app's tests: the `voxboard` binary as a user runs it, the egui app, sound devices.

mod api;
mod audio_devices;
mod board_persistence;
mod cli;
mod cli_audio;
mod prereq;
mod sink;
mod ui_board;
mod ui_connections;
mod ui_e2e;
mod ui_gateway_trust;
mod ui_interactions;
mod ui_settings;
mod ui_support;
