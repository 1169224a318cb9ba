import Foundation
import OpenStack
import Synchronization
import TestSupport

/// A data directory and a clouds.yaml for driving the CLI in the identity, compute, image and
/// volume tests.
struct MigrationEnv: Sendable {
    let dir: String
    var data: String { dir + "/data" }
    let clouds: String

    init(_ tag: String, clouds: [String: CloudProfile]) throws {
        dir = try LabClouds.tempDir(tag)
        self.clouds = try LabClouds.write(clouds, in: dir)
    }

    func run(_ args: [String], env: [String: String] = [:], timeout: Double = 600) async throws -> (exitCode: Int32, stdout: String, stderr: String) {
        try await CLIRunner.run(args + ["--data-dir", data], env: env.merging(["OS_CLIENT_CONFIG_FILE": clouds]) { a, _ in a }, timeout: timeout)
    }

    func path(_ name: String) -> String { (data as NSString).appendingPathComponent(name) }
    func file(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }
    func write(_ name: String, _ text: String) throws {
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        try text.write(toFile: path(name), atomically: true, encoding: .utf8)
    }
    /// Replace text in a data file, failing if it is not there.
    func edit(_ name: String, _ old: String, _ new: String) throws {
        let text = try file(name)
        guard text.contains(old) else { throw TestFailure("\(name) does not contain \(old)") }
        try write(name, text.replacingOccurrences(of: old, with: new))
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }
}

/// The JSON lines of `--json` output.
enum CLIEvents {
    static func all(_ stdout: String) -> [JSONValue] {
        stdout.split(separator: "\n").compactMap { try? JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
    }

    static func recap(_ stdout: String) -> JSONValue? { all(stdout).last { $0["event"]?.stringValue == "recap" } }

    /// "kind: name" of the items with `status`, sorted.
    static func items(_ stdout: String, _ status: String) -> [String] {
        all(stdout).filter { $0["event"]?.stringValue == "item" && $0["status"]?.stringValue == status }
            .map { "\($0["kind"]?.stringValue ?? ""): \($0["name"]?.stringValue ?? "")" }.sorted()
    }

    /// The item events of one name.
    static func item(_ stdout: String, _ name: String) -> JSONValue? {
        all(stdout).last { $0["event"]?.stringValue == "item" && $0["name"]?.stringValue == name }
    }

    static func count(_ recap: JSONValue?, _ key: String) -> Int { recap?[key]?.intValue ?? -1 }
}

/// Admin-made test resources are found and deleted by name prefix: keypairs of those users,
/// users, projects (children first), flavors. Tolerates what is gone.
enum AdminSweep {
    static func run(prefixes: [String]) async {
        guard let admin = try? Lab.admin() else { return }
        func matches(_ name: String) -> Bool { prefixes.contains { name.hasPrefix($0) } }
        if let users = try? await admin.list(Keystone.users).collect() {
            for u in users where matches(u.name) {
                for k in (try? await admin.keypairs(userID: u.id)) ?? [] { try? await admin.deleteKeypair(k.name, userID: u.id) }
                try? await admin.delete(Keystone.users, u.id)
            }
        }
        for _ in 0..<5 {
            guard let projects = try? await admin.list(Keystone.projects).collect().filter({ matches($0.name) }), !projects.isEmpty else { break }
            let parents = Set(projects.compactMap(\.parentID))
            for p in projects where !parents.contains(p.id) {
                if p.enabled == false { _ = try? await admin.update(Keystone.projects, p.id, ["enabled": true]) }
                try? await admin.delete(Keystone.projects, p.id)
            }
        }
        if let flavors = try? await admin.list(Nova.flavors, query: [QueryItem("is_public", "None")]).collect() {
            for f in flavors where matches(f.name) { try? await admin.delete(Nova.flavors, f.id) }
        }
    }

    /// Run `body`, then sweep, whether it failed or not.
    static func with<T: Sendable>(prefixes: [String], _ body: () async throws -> T) async throws -> T {
        let result: T
        do {
            result = try await body()
        } catch {
            await run(prefixes: prefixes)
            throw error
        }
        await run(prefixes: prefixes)
        return result
    }
}

/// Files of random bytes, for image data.
enum RandomData {
    static func file(_ path: String, mebibytes: Int) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? out.close() }
        let random = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom"))
        defer { try? random.close() }
        for _ in 0..<mebibytes {
            guard let chunk = try random.read(upToCount: 1 << 20) else { break }
            try out.write(contentsOf: chunk)
        }
    }
}

/// Runs the CLI and SIGKILLs it when a line of its stdout satisfies `kill`: how a test makes an
/// import die in the middle of an image.
enum KillingRunner {
    struct Outcome {
        var killed: Bool
        var exitStatus: Int32
        var stdout: String
    }

    static func run(_ args: [String], env: [String: String], timeout: Double = 300,
                    kill: @escaping @Sendable (String) -> Bool) async throws -> Outcome
    {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CLIRunner.binaryPath)
        p.arguments = args
        var environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("OS_") }
        for (k, v) in env { environment[k] = v }
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let pid = p.processIdentifier
        let state = Mutex((text: "", killed: false))
        let reader = Task.detached {
            let h = out.fileHandleForReading
            var pending = ""
            while true {
                let data = h.availableData
                if data.isEmpty { break }
                pending += String(decoding: data, as: UTF8.self)
                while let nl = pending.firstIndex(of: "\n") {
                    let line = String(pending[..<nl])
                    pending = String(pending[pending.index(after: nl)...])
                    let already = state.withLock { s -> Bool in
                        s.text += line + "\n"
                        return s.killed
                    }
                    if !already, kill(line) {
                        Foundation.kill(pid, SIGKILL)
                        state.withLock { $0.killed = true }
                    }
                }
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning {
            if Date() > deadline {
                Foundation.kill(pid, SIGKILL)
                throw TestFailure("os-migrate \(args.joined(separator: " ")) did not finish within \(timeout) s")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        _ = await reader.value
        let s = state.withLock { $0 }
        return Outcome(killed: s.killed, exitStatus: p.terminationStatus, stdout: s.text)
    }
}
