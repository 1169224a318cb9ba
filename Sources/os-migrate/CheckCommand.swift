import ArgumentParser
import Engine
import Foundation
import OpenStack

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Authenticate to every configured cloud and show its project, user, region and endpoints.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        try await CommandRunner.run(common) { transport, config in
            var clouds: [(role: String, profile: CloudProfile)] = []
            if let s = config.src { clouds.append(("src", s)) }
            if let d = config.dst { clouds.append(("dst", d)) }
            if clouds.isEmpty {
                let loader = CloudConfigLoader()
                guard let name = loader.defaultCloudName() else {
                    throw ConfigError("no cloud configured: pass --src-cloud/--dst-cloud, --vars FILE, or set OS_CLOUD or OS_AUTH_URL")
                }
                clouds.append(("cloud", try loader.load(cloud: name)))
            }
            var reports: [CloudCheck.Report] = []
            await withTaskGroup(of: (Int, CloudCheck.Report).self) { group in
                for (i, c) in clouds.enumerated() {
                    group.addTask { (i, await CloudCheck.run(role: c.role, profile: c.profile, transport: transport)) }
                }
                var out: [(Int, CloudCheck.Report)] = []
                for await r in group { out.append(r) }
                reports = out.sorted { $0.0 < $1.0 }.map(\.1)
            }
            if common.json {
                var o: JSONObject = [:]
                for r in reports { o[r.role] = r.json }
                printLine(JSONValue.object(["clouds": .object(o), "ok": .bool(reports.allSatisfy(\.ok))]).jsonString())
            } else {
                for r in reports { printLine(r.text) }
            }
            // Failures also go to stderr, one line each, like every other error.
            for r in reports {
                for f in r.failures { FileHandle.standardError.write(Data(("os-migrate: error: " + f + "\n").utf8)) }
            }
            return reports.allSatisfy(\.ok) ? 0 : 1
        }
    }
}

enum CloudCheck {
    struct Report: Sendable {
        var role: String
        var profile: CloudProfile
        var token: AuthToken?
        var endpoints: [ServiceEndpoint] = []
        var failures: [String] = []
        var ok: Bool { token != nil && failures.isEmpty }

        var json: JSONValue {
            var o: JSONObject = [
                "cloud": .string(profile.name), "origin": .string(profile.origin), "auth_url": .string(profile.authURL),
                "region": profile.regionName.map(JSONValue.string) ?? .null, "interface": .string(profile.interface),
                "ok": .bool(ok),
            ]
            if let t = token {
                o["project"] = ["id": t.projectID.map(JSONValue.string) ?? .null, "name": t.projectName.map(JSONValue.string) ?? .null,
                                "domain": t.projectDomainName.map(JSONValue.string) ?? .null]
                o["user"] = ["id": .string(t.userID), "name": .string(t.userName), "domain": t.userDomainName.map(JSONValue.string) ?? .null]
                o["roles"] = .array(t.roles.sorted().map(JSONValue.string))
            }
            var eps: JSONObject = [:]
            for e in endpoints {
                var x: JSONObject = ["url": .string(e.url)]
                if let m = e.microversion { x["microversion"] = .string(m) }
                if let m = e.maxMicroversion { x["max_microversion"] = .string(m) }
                eps[e.service] = .object(x)
            }
            o["endpoints"] = .object(eps)
            if !failures.isEmpty { o["errors"] = .array(failures.map(JSONValue.string)) }
            return .object(o)
        }

        var text: String {
            var lines = ["\(role): cloud '\(profile.name)' (\(profile.origin))"]
            func row(_ k: String, _ v: String) { lines.append("  " + k.padding(toLength: 14, withPad: " ", startingAt: 0) + v) }
            row("auth URL", profile.authURL)
            if let t = token {
                row("project", "\(t.projectName ?? "-") (\(t.projectID ?? "unscoped"))\(t.projectDomainName.map { ", domain \($0)" } ?? "")")
                row("user", "\(t.userName) (\(t.userID))")
                row("roles", t.roles.sorted().joined(separator: ", "))
            }
            row("region", profile.regionName ?? "(any)")
            for e in endpoints {
                var v = e.url
                if let m = e.microversion { v += "  (microversion \(m)\(e.maxMicroversion.map { ", max \($0)" } ?? ""))" }
                row(e.service, v)
            }
            for f in failures { lines.append("  FAILED: \(f)") }
            lines.append("  " + (ok ? "ok" : "failed"))
            return lines.joined(separator: "\n")
        }
    }

    static func run(role: String, profile: CloudProfile, transport: HTTPTransport) async -> Report {
        var report = Report(role: role, profile: profile)
        do {
            let session = try CloudSession(profile: profile, transport: transport)
            report.token = try await session.authenticate()
            for service in ServiceType.all {
                do {
                    report.endpoints.append(try await session.endpoint(service))
                } catch {
                    report.failures.append("\(service): \(error)")
                }
            }
        } catch {
            report.failures.append("\(error)")
        }
        return report
    }
}
