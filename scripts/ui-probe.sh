# Sourced by scripts/e2e-gui and scripts/e2e-gui-input (not run on its own): finds the app's
# widgets where the app says they are, so that xdotool needs no fixed coordinates. The app
# started with VOXBOARD_UI_PROBE=FILE keeps FILE holding "NAME X Y" lines (src/ui/probe.rs).

# at NAME: prints the centre "X Y" of the widget NAME in the window, waiting up to 5 s for it
# to show; fails the script if it never does.
at() {
  local xy=""
  for _ in $(seq 50); do
    xy=$(awk -v n="$1" 'substr($0, 1, length(n) + 1) == n " " { print $(NF - 1), $NF }' \
      "$VOXBOARD_UI_PROBE" 2>/dev/null || true)
    [[ -n "$xy" ]] && { echo "$xy"; return; }
    sleep 0.1
  done
  echo "'$1' never showed on screen (see $VOXBOARD_UI_PROBE)" >&2
  exit 1
}
