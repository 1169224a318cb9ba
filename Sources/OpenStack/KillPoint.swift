import Foundation

/// Test hooks for the kill tests: with `OSM_EXIT_AT=<point>` in the environment the process ends
/// the instant it reaches that point, as a `kill -9` would there (`_exit(137)`: no cleanup, no
/// buffered output flushed, no ledger record after it). Without the variable nothing happens.
///
/// Points: `volume-created` (a detached volume's create answered, before its copy),
/// `volume-copy-attached` (both volumes on the conversion hosts), `volume-copy-copied` (copied,
/// still attached), `volume-copy-detached` (detached, verified copy not yet recorded),
/// `image-created` (image record made, no data yet), `image-uploaded` (data in, not yet protected).
public enum KillPoint {
    public static func reached(_ point: String) {
        guard let want = ProcessInfo.processInfo.environment["OSM_EXIT_AT"], want == point else { return }
        _exit(137)
    }
}
