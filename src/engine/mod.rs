//! The engine: one thread owns the `bevy_ecs` world and runs the schedule every 20 ms.
