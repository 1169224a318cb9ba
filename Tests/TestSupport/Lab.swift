import Foundation
import Logging
import OpenStack
import Synchronization

/// The project's OpenStack lab on this machine (`lab/`, started by `lab/up`): its clouds.yaml, one HTTP transport
/// for the whole test process, and sessions for its clouds.
///
/// Lab tests never skip: when the lab is down, `profile(_:)` or the first request fails and
/// says so.
public enum Lab {
    /// `$OSM_LAB_CLOUDS`, else `/var/lib/osmlab/clouds.yaml`.
    public static var cloudsPath: String {
        if let p = ProcessInfo.processInfo.environment["OSM_LAB_CLOUDS"], !p.isEmpty { return p }
        return "/var/lib/osmlab/clouds.yaml"
    }

    /// The lab's scripts (`lab/` of this repository).
    public static let directory: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/TestSupport/Lab.swift
        return url.path + "/lab"
    }()

    /// Keystone of the lab, as clouds.yaml says.
    public static let authURL = "http://127.0.0.1:5000/v3"

    /// A cloud of the lab's clouds.yaml: "osmlab-src", "osmlab-dst", "osmlab-admin".
    /// Only that file is read (not ./clouds.yaml, ~/.config/openstack, OS_* of the test process).
    public static func profile(_ cloud: String) throws -> CloudProfile {
        let path = cloudsPath
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ConfigError("the lab is not up: \(path) is missing or unreadable (run scripts/lab-up)")
        }
        let loader = CloudConfigLoader(environment: ["OS_CLIENT_CONFIG_FILE": path, "OS_CLIENT_SECURE_FILE": "/nonexistent/secure.yaml"],
                                       currentDirectory: "/nonexistent", homeDirectory: "/nonexistent")
        return try loader.load(cloud: cloud)
    }

    /// The test process's one HTTP client (never shut down: it lives as long as the process).
    public static let transport = HTTPTransport()

    /// A session for a lab profile (or any profile), sharing `transport`.
    public static func session(_ profile: CloudProfile, options: SessionOptions = .init(),
                               logger: Logger = Lab.logger) throws -> CloudSession
    {
        try CloudSession(profile: profile, transport: transport, options: options, logger: logger)
    }

    /// Sessions' default logger: warnings and errors only (retries are notices), so that test
    /// output stays readable.
    public static var logger: Logger {
        var l = Logger(label: "os-migrate.test")
        l.logLevel = .warning
        return l
    }

    /// The lab's admin (project admin, role admin): one session for the whole test process, so
    /// that its token is reused (every token costs Keystone a bcrypt check). Shared by tests
    /// running in parallel: to count requests, make your own with `session(profile("osmlab-admin"))`.
    public static func admin() throws -> CloudSession {
        try adminSession.withLock { cached in
            if let s = cached { return s }
            let s = try session(profile("osmlab-admin"))
            cached = s
            return s
        }
    }

    private static let adminSession = Mutex<CloudSession?>(nil)

    /// Options for tests that go through a `FaultProxy`: fast retries, short timeouts (5 s: the
    /// lab shares two cores with builds, and the token request has the same timeout), and timeouts
    /// retried like any fault (the proxy stalls requests on purpose).
    public static let fastRetryOptions = SessionOptions(
        retry: RetryPolicy(maxAttempts: 8, baseDelay: 0.05, maxDelay: 0.5, maxTimeoutRetries: 7), requestTimeout: 5)

    /// 6 random lowercase hex digits.
    public static func randomHex(_ count: Int = 6) -> String {
        String((0..<count).map { _ in "0123456789abcdef".randomElement()! })
    }
}
