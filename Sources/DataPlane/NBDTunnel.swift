import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The fallback anchor, automated: `qemu-nbd --read-only` on the source host, exported on a private
/// unix socket there, forwarded to a private unix socket here with `ssh -L` (nothing listens on a
/// TCP port on either host). The local sender then reads `nbd+unix:///?socket=<local>`.
final class NBDTunnel: Sendable {
    let localSocket: String
    private let server: ChildProcess
    private let tunnel: ChildProcess
    private let directory: String

    init(endpoint: SSHEndpoint, path: String, compress: Bool) throws {
        // 1. qemu-nbd on the source, stopped when our ssh session closes its stdin.
        let script = """
            if [ ! -e "$1" ]; then echo "No such file or directory" >&2; exit 4; fi
            if [ ! -r "$1" ]; then echo "Permission denied" >&2; exit 5; fi
            command -v qemu-nbd >/dev/null || { echo "qemu-nbd is not installed" >&2; exit 6; }
            d=$(mktemp -d "${TMPDIR:-/tmp}/osm-nbd.XXXXXX") || exit 1
            qemu-nbd --read-only --persistent --shared=32 --format=raw --socket="$d/s" "$1" </dev/null >"$d/log" 2>&1 & p=$!
            i=0; while [ ! -S "$d/s" ] && [ $i -lt 200 ] && kill -0 $p 2>/dev/null; do sleep 0.05; i=$((i+1)); done
            sleep 0.05
            if [ ! -S "$d/s" ] || ! kill -0 $p 2>/dev/null; then tail -n 1 "$d/log" >&2; rm -rf "$d"; exit 3; fi
            echo "$d/s"
            read _
            kill $p 2>/dev/null; wait $p; rm -rf "$d"
            """
        let remote = "sh -c " + shellQuote(script) + " sh " + shellQuote(path)
        server = try ChildProcess(argv: endpoint.sshArguments() + [remote], stdin: .pipe, stdout: .pipe, stderr: .pipe)
        server.collectStderr()
        let remoteSocket = server.readLine() ?? ""
        guard remoteSocket.hasPrefix("/") else {
            server.closeStdin()
            let status = server.wait(timeout: 10)
            if status == .exited(255) {
                throw DataPlaneError("cannot connect to \(endpoint.destination) over ssh: \(server.lastStderrLine() ?? "ssh failed")", kind: .connect)
            }
            let why = server.lastStderrLine() ?? status.description
            switch status {
            case .exited(4): throw DataPlaneError("source \(endpoint.destination):\(path): \(why)", kind: .notFound)
            case .exited(5): throw DataPlaneError("source \(endpoint.destination):\(path): \(why)", kind: .permission)
            default: throw DataPlaneError("source \(endpoint.destination):\(path): qemu-nbd did not start: \(why)", kind: .other)
            }
        }
        // 2. ssh -L local-socket:remote-socket.
        var template = Array(((ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp") + "/osm-nbd-XXXXXX").utf8CString)
        guard let d = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            server.closeStdin()
            throw DataPlaneError("mkdtemp failed: \(errnoString(errno))")
        }
        directory = String(cString: d)
        localSocket = directory + "/s"
        var args = endpoint.sshArguments(compress: compress)
        args.insert(contentsOf: ["-N", "-o", "ExitOnForwardFailure=yes", "-o", "StreamLocalBindUnlink=yes",
                                 "-L", "\(localSocket):\(remoteSocket)"], at: 1)
        do {
            tunnel = try ChildProcess(argv: args, stdin: .null, stdout: .null, stderr: .pipe)
        } catch {
            server.closeStdin()
            throw error
        }
        tunnel.collectStderr()
        let deadline = monotonicSeconds() + 15
        while true {
            if (try? NBDConnection(NBDAddress(host: nil, port: 0, socketPath: localSocket, export: ""))) != nil { break }
            if monotonicSeconds() > deadline || kill(tunnel.pid, 0) != 0 || kill(server.pid, 0) != 0 {
                stop()
                throw DataPlaneError("cannot open the ssh tunnel to \(endpoint.destination): \(tunnel.lastStderrLine() ?? "timed out")", kind: .connect)
            }
            usleep(20_000)
        }
    }

    var uri: String { "nbd+unix:///?socket=\(localSocket)" }

    func stop() {
        tunnel.signal(SIGTERM)
        _ = tunnel.wait(timeout: 10)
        server.closeStdin()
        _ = server.wait(timeout: 10)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
