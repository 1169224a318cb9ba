import Foundation
import OpenStack
import Testing
import TestSupport

/// `os-migrate check`, the built binary, against the lab.
@Suite struct CheckCommandTests {
    struct Expected {
        var projectID: String
        var projectName: String
        var userID: String
        var userName: String
        var roles: [String]

        var endpoints: [(String, String, String?, String?)] {
            [
                ("identity", "http://127.0.0.1:5000/v3", nil, nil),
                ("compute", "http://127.0.0.1:8774/v2.1", "2.79", "2.93"),
                ("network", "http://127.0.0.1:9696/v2.0", nil, nil),
                ("image", "http://127.0.0.1:9292/v2", nil, nil),
                ("block-storage", "http://127.0.0.1:8776/v3/\(projectID)", "3.59", "3.70"),
            ]
        }

        /// The text block `check` prints for one cloud.
        func text(role: String, cloud: String, origin: String) -> String {
            func row(_ k: String, _ v: String) -> String { "  " + k.padding(toLength: 14, withPad: " ", startingAt: 0) + v }
            var lines = ["\(role): cloud '\(cloud)' (\(origin))"]
            lines.append(row("auth URL", "http://127.0.0.1:5000/v3"))
            lines.append(row("project", "\(projectName) (\(projectID)), domain Default"))
            lines.append(row("user", "\(userName) (\(userID))"))
            lines.append(row("roles", roles.joined(separator: ", ")))
            lines.append(row("region", "RegionOne"))
            for (service, url, mv, max) in endpoints {
                lines.append(row(service, url + (mv.map { "  (microversion \($0), max \(max!))" } ?? "")))
            }
            lines.append("  ok")
            return lines.joined(separator: "\n")
        }

        /// The JSON object `check --json` prints for one cloud, without `cloud` and `origin`.
        var json: JSONValue {
            var eps: JSONObject = [:]
            for (service, url, mv, max) in endpoints {
                var e: JSONObject = ["url": .string(url)]
                if let mv { e["microversion"] = .string(mv) }
                if let max { e["max_microversion"] = .string(max) }
                eps[service] = .object(e)
            }
            return [
                "auth_url": "http://127.0.0.1:5000/v3", "region": "RegionOne", "interface": "public", "ok": true,
                "project": ["id": .string(projectID), "name": .string(projectName), "domain": "Default"],
                "user": ["id": .string(userID), "name": .string(userName), "domain": "Default"],
                "roles": .array(roles.map(JSONValue.string)), "endpoints": .object(eps),
            ]
        }

        static func of(_ cloud: String) async throws -> Expected {
            let t = try await Lab.session(Lab.profile(cloud)).authenticate()
            return Expected(projectID: try #require(t.projectID), projectName: try #require(t.projectName), userID: t.userID,
                            userName: t.userName, roles: t.roles.sorted())
        }
    }

    var env: [String: String] { ["OS_CLIENT_CONFIG_FILE": Lab.cloudsPath] }
    var origin: String { "clouds.yaml \(Lab.cloudsPath)" }

    func secrets() throws -> [String] {
        try ["osmlab-src", "osmlab-dst", "osmlab-admin"].compactMap { try Lab.profile($0).auth["password"] }
    }

    @Test func srcAndDst() async throws {
        let r = try await CLIRunner.run(["check", "--src-cloud", "osmlab-src", "--dst-cloud", "osmlab-dst"], env: env)
        #expect(r.stderr == "")
        #expect(r.exitCode == 0)
        let src = try await Expected.of("osmlab-src")
        let dst = try await Expected.of("osmlab-dst")
        #expect(src.projectName == "src")
        #expect(dst.projectName == "dst")
        #expect(r.stdout == src.text(role: "src", cloud: "osmlab-src", origin: origin) + "\n"
            + dst.text(role: "dst", cloud: "osmlab-dst", origin: origin) + "\n")
        for s in try secrets() { #expect(!r.stdout.contains(s)) }
    }

    @Test func adminAlone() async throws {
        let r = try await CLIRunner.run(["check", "--src-cloud", "osmlab-admin"], env: env)
        #expect(r.stderr == "")
        #expect(r.exitCode == 0)
        let admin = try await Expected.of("osmlab-admin")
        #expect(admin.roles.contains("admin"))
        #expect(r.stdout == admin.text(role: "src", cloud: "osmlab-admin", origin: origin) + "\n")
    }

    @Test func jsonShape() async throws {
        let r = try await CLIRunner.run(["check", "--src-cloud", "osmlab-src", "--dst-cloud", "osmlab-dst", "--json"], env: env)
        #expect(r.exitCode == 0)
        #expect(r.stderr == "")
        #expect(r.stdout.hasSuffix("}\n"))
        #expect(r.stdout.filter { $0 == "\n" }.count == 1, "one JSON object on one line")
        let doc = try JSONDecoder().decode(JSONValue.self, from: Data(r.stdout.utf8))
        var src = try await Expected.of("osmlab-src").json.objectValue!
        src["cloud"] = "osmlab-src"
        src["origin"] = .string(origin)
        var dst = try await Expected.of("osmlab-dst").json.objectValue!
        dst["cloud"] = "osmlab-dst"
        dst["origin"] = .string(origin)
        #expect(doc == ["clouds": ["src": .object(src), "dst": .object(dst)], "ok": true])
    }

    @Test func varsFileGivesTheSameAsCloudsYaml() async throws {
        try await withTempDir("check-vars") { dir in
            var text = "os_migrate_data_dir: \(dir.path)/data\n"
            for (side, cloud) in [("src", "osmlab-src"), ("dst", "osmlab-dst")] {
                let p = try Lab.profile(cloud)
                text += "os_migrate_\(side)_auth:\n"
                for key in p.auth.keys.sorted() where key != "password" {
                    text += "  \(key): \(p.auth[key]!)\n"
                }
                text += "  password: \"{{ lookup('env', 'OSM_TEST_\(side.uppercased())_PASSWORD') }}\"\n"
                text += "os_migrate_\(side)_region_name: \(p.regionName ?? "RegionOne")\n"
            }
            let varsPath = try dir.write("os-migrate-vars.yml", text)
            var env = ["OSM_TEST_SRC_PASSWORD": try Lab.profile("osmlab-src").auth["password"] ?? "",
                       "OSM_TEST_DST_PASSWORD": try Lab.profile("osmlab-dst").auth["password"] ?? ""]
            #expect(!text.contains(env["OSM_TEST_SRC_PASSWORD"]!))

            let fromVars = try await CLIRunner.run(["check", "--vars", varsPath, "--json"], env: env)
            #expect(fromVars.stderr == "")
            #expect(fromVars.exitCode == 0)
            env["OS_CLIENT_CONFIG_FILE"] = Lab.cloudsPath
            let fromClouds = try await CLIRunner.run(["check", "--src-cloud", "osmlab-src", "--dst-cloud", "osmlab-dst", "--json"], env: env)
            #expect(fromClouds.exitCode == 0)

            let a = try JSONDecoder().decode(JSONValue.self, from: Data(fromVars.stdout.utf8))
            let b = try JSONDecoder().decode(JSONValue.self, from: Data(fromClouds.stdout.utf8))
            for side in ["src", "dst"] {
                var x = try #require(a["clouds"]?[side]?.objectValue)
                var y = try #require(b["clouds"]?[side]?.objectValue)
                #expect(x["cloud"] == .string(side))
                #expect(x["origin"] == .string("vars file \(varsPath)"))
                x["cloud"] = nil
                x["origin"] = nil
                y["cloud"] = nil
                y["origin"] = nil
                #expect(JSONValue.object(x) == JSONValue.object(y))
            }
            #expect(a["clouds"]?["src"]?["project"]?["name"] == "src")
            #expect(a["clouds"]?["dst"]?["project"]?["name"] == "dst")
            #expect(a["ok"] == true)

            // Text form: the same blocks, named after the vars file's sides.
            let textRun = try await CLIRunner.run(["check", "--vars", varsPath], env: env)
            #expect(textRun.exitCode == 0)
            let src = try await Expected.of("osmlab-src")
            let dst = try await Expected.of("osmlab-dst")
            #expect(textRun.stdout == src.text(role: "src", cloud: "src", origin: "vars file \(varsPath)") + "\n"
                + dst.text(role: "dst", cloud: "dst", origin: "vars file \(varsPath)") + "\n")
        }
    }

    @Test func flagsWinOverVarsWhichWinOverOSCloud() async throws {
        try await withTempDir("check-prec") { dir in
            let p = try Lab.profile("osmlab-dst")
            var text = "os_migrate_src_auth:\n"
            for key in p.auth.keys.sorted() { text += "  \(key): \"\(p.auth[key]!)\"\n" }
            text += "os_migrate_src_region_name: RegionOne\n"
            let varsPath = try dir.write("vars.yml", text)
            let env = ["OS_CLIENT_CONFIG_FILE": Lab.cloudsPath, "OS_CLOUD": "osmlab-admin"]

            // vars file (src = dst-user) over OS_CLOUD
            let viaVars = try await CLIRunner.run(["check", "--vars", varsPath, "--json"], env: env)
            #expect(viaVars.exitCode == 0)
            let v = try JSONDecoder().decode(JSONValue.self, from: Data(viaVars.stdout.utf8))
            #expect(v["clouds"]?.objectValue?.keys.sorted() == ["src"])
            #expect(v["clouds"]?["src"]?["user"]?["name"] == "dst-user")

            // --src-cloud over the vars file
            let viaFlag = try await CLIRunner.run(["check", "--vars", varsPath, "--src-cloud", "osmlab-src", "--json"], env: env)
            #expect(viaFlag.exitCode == 0)
            let f = try JSONDecoder().decode(JSONValue.self, from: Data(viaFlag.stdout.utf8))
            #expect(f["clouds"]?["src"]?["user"]?["name"] == "src-user")
            #expect(f["clouds"]?["src"]?["cloud"] == "osmlab-src")

            // nothing else: OS_CLOUD
            let viaEnv = try await CLIRunner.run(["check", "--json"], env: env)
            #expect(viaEnv.exitCode == 0)
            let e = try JSONDecoder().decode(JSONValue.self, from: Data(viaEnv.stdout.utf8))
            #expect(e["clouds"]?.objectValue?.keys.sorted() == ["cloud"])
            #expect(e["clouds"]?["cloud"]?["cloud"] == "osmlab-admin")
            #expect(e["clouds"]?["cloud"]?["user"]?["name"] == "admin")
        }
    }

    @Test func osVariablesFormTheEnvvarsCloud() async throws {
        let p = try Lab.profile("osmlab-src")
        let env = [
            "OS_AUTH_URL": p.authURL, "OS_USERNAME": p.auth["username"]!, "OS_PASSWORD": p.auth["password"]!,
            "OS_PROJECT_NAME": p.auth["project_name"]!, "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_NAME": "Default",
            "OS_REGION_NAME": "RegionOne", "OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml",
        ]
        let r = try await CLIRunner.run(["check"], env: env)
        #expect(r.stderr == "")
        #expect(r.exitCode == 0)
        let src = try await Expected.of("osmlab-src")
        #expect(r.stdout == src.text(role: "cloud", cloud: "envvars", origin: "OS_* environment variables") + "\n")
        #expect(!r.stdout.contains(p.auth["password"]!))
    }

    // MARK: failures

    @Test func wrongPasswordIsACleanOneLineError() async throws {
        try await withTempDir("check-pw") { dir in
            let real = try #require(try Lab.profile("osmlab-src").auth["password"])
            let wrong = "wrong-" + Lab.randomHex(12)
            let original = try String(contentsOfFile: Lab.cloudsPath, encoding: .utf8)
            #expect(original.contains(real))
            let clouds = try dir.write("clouds.yaml", original.replacingOccurrences(of: real, with: wrong))
            let r = try await CLIRunner.run(["check", "--src-cloud", "osmlab-src"], env: ["OS_CLIENT_CONFIG_FILE": clouds])
            #expect(r.exitCode == 1)
            let prefix = "os-migrate: error: identity POST http://127.0.0.1:5000/v3/auth/tokens returned 401: "
                + "authentication failed for cloud 'osmlab-src' (check the credentials): The request you have made requires authentication."
            #expect(r.stderr.hasPrefix(prefix), "stderr: \(r.stderr)")
            #expect(r.stderr.hasSuffix("\n"))
            #expect(r.stderr.dropLast().contains("\n") == false, "one line: \(r.stderr)")
            #expect(r.stderr.range(of: #" \(request req-[0-9a-f-]{36}\)\n$"#, options: .regularExpression) != nil, "stderr: \(r.stderr)")
            for s in [wrong, real] {
                #expect(!r.stdout.contains(s))
                #expect(!r.stderr.contains(s))
            }

            // --json: the report says what failed, the same line goes to stderr.
            let j = try await CLIRunner.run(["check", "--src-cloud", "osmlab-src", "--dst-cloud", "osmlab-dst", "--json"],
                                            env: ["OS_CLIENT_CONFIG_FILE": clouds])
            #expect(j.exitCode == 1)
            let doc = try JSONDecoder().decode(JSONValue.self, from: Data(j.stdout.utf8))
            #expect(doc["ok"] == false)
            #expect(doc["clouds"]?["src"]?["ok"] == false)
            #expect(doc["clouds"]?["src"]?["project"] == nil)
            let errors = try #require(doc["clouds"]?["src"]?["errors"]?.arrayValue)
            #expect(errors.count == 1)
            #expect(errors.first?.stringValue.map { "os-migrate: error: " + $0 + "\n" } == j.stderr)
            #expect(doc["clouds"]?["dst"]?["ok"] == true)
            #expect(doc["clouds"]?["dst"]?["endpoints"]?.objectValue?.count == 5)
            for s in [wrong, real] { #expect(!j.stdout.contains(s) && !j.stderr.contains(s)) }
        }
    }

    @Test func unknownCloudAndNoCloud() async throws {
        let unknown = try await CLIRunner.run(["check", "--src-cloud", "nope"], env: env)
        #expect(unknown.exitCode == 1)
        #expect(unknown.stdout == "")
        #expect(unknown.stderr
            == "os-migrate: error: clouds.yaml \(Lab.cloudsPath): cloud 'nope' not found (known: osmlab-admin, osmlab-dst, osmlab-src)\n")

        try await withTempDir("check-none") { dir in
            let none = try await CLIRunner.run(["check"], env: ["OS_CLIENT_CONFIG_FILE": dir.path + "/none.yaml", "HOME": dir.path],
                                               workingDirectory: dir.path)
            #expect(none.exitCode == 1)
            #expect(none.stderr
                == "os-migrate: error: no cloud configured: pass --src-cloud/--dst-cloud, --vars FILE, or set OS_CLOUD or OS_AUTH_URL\n")
        }
    }

    @Test func unreachableKeystone() async throws {
        try await withTempDir("check-down") { dir in
            let clouds = try dir.write("clouds.yaml", """
                clouds:
                  down:
                    auth: {auth_url: 'http://127.0.0.1:9/v3', username: u, password: p, project_name: x}
                """)
            let start = ContinuousClock.now
            let r = try await CLIRunner.run(["check", "--src-cloud", "down"], env: ["OS_CLIENT_CONFIG_FILE": clouds], timeout: 180)
            // Nothing listens there: one more try, then the error (connect_retries would wait longer);
            // was 30 s of the HTTP client's own retries. Loose: the suite shares two cores with the lab.
            #expect(ContinuousClock.now - start < .seconds(12))
            #expect(r.exitCode == 1)
            #expect(r.stderr.hasPrefix("os-migrate: error: identity POST http://127.0.0.1:9/v3/auth/tokens failed: "
                + "cannot reach http://127.0.0.1:9/v3/auth/tokens for cloud 'down': the connection was refused: nothing listens there"), "stderr: \(r.stderr)")
            #expect(r.stderr.dropLast().contains("\n") == false, "one line: \(r.stderr)")
        }
    }

    @Test func cliRunnerHelpAndTimeout() async throws {
        let help = try await CLIRunner.run(["--help"])
        #expect(help.exitCode == 0)
        #expect(help.stdout.contains("check"))
        let checkHelp = try await CLIRunner.run(["check", "--help"])
        for option in ["--data-dir", "--src-cloud", "--dst-cloud", "--vars", "--json", "--verbose"] {
            #expect(checkHelp.stdout.contains(option), "\(option)")
        }
        // A run that outlives its timeout is killed and reported (its Keystone never answers).
        let silent = try SilentListener()
        try await withTempDir("cli-timeout") { dir in
            let clouds = try dir.write("clouds.yaml", """
                clouds:
                  down:
                    auth: {auth_url: 'http://127.0.0.1:\(silent.port)/v3', username: u, password: p, project_name: x}
                """)
            let start = ContinuousClock.now
            await #expect(throws: CLIRunner.Timeout.self) {
                _ = try await CLIRunner.run(["check", "--src-cloud", "down"], env: ["OS_CLIENT_CONFIG_FILE": clouds], timeout: 1)
            }
            #expect(ContinuousClock.now - start < .seconds(8))
        }
    }

    @Test func verboseLogsRequestsButNoSecrets() async throws {
        let r = try await CLIRunner.run(["check", "--src-cloud", "osmlab-src", "--dst-cloud", "osmlab-dst", "-vvv"], env: env)
        #expect(r.exitCode == 0)
        #expect(r.stderr.contains("POST http://127.0.0.1:5000/v3/auth/tokens -> 201"))
        #expect(r.stderr.contains("GET http://127.0.0.1:8774/") || r.stderr.contains("endpoint compute: http://127.0.0.1:8774/v2.1"))
        #expect(r.stderr.contains("endpoint block-storage: http://127.0.0.1:8776/v3/"))
        for s in try secrets() {
            #expect(!r.stderr.contains(s))
            #expect(!r.stdout.contains(s))
        }
        // Keystone's fernet tokens start with gAAAAA.
        #expect(!r.stderr.contains("gAAAAA"))
        #expect(!r.stdout.contains("gAAAAA"))
    }
}
