import Foundation
import OpenStack

/// Security group rules (`security_group_rules.yml`, `openstack.network.SecurityGroupRule`).
/// Rules have no name and no update API: a rule is identified by what it matches, an existing
/// identical rule is `ok` (a 409 from Neutron too), and a rule whose description changed is
/// replaced. The file is the only truth: a group's rules the file does not list are deleted
/// (see `finish` for which groups), unless `--keep-unlisted-rules`.
public enum SecurityGroupRuleKind: ResourceKind {
    public static let name = "security-group-rules"
    public static let fileName = "security_group_rules.yml"
    public static let typeName = "openstack.network.SecurityGroupRule"
    public static let dependencies = ["security-groups"]
    public static let requiredParams = ["security_group_ref", "direction", "ether_type"]
    public static let isNamed = false
    public static let filterVariable = "os_migrate_security_groups_filter"
    public static let filterPath = "security_group_ref.name"

    static let fieldMap = FieldMap([
        Field("description"),
        Field("direction"),
        Field("ether_type", "ethertype"),
        Field("port_range_max"),
        Field("port_range_min"),
        Field("protocol"),
        .ref("remote_address_group_ref", "remote_address_group_id", .addressGroup),
        .ref("remote_group_ref", "remote_group_id", .securityGroup),
        Field("remote_ip_prefix"),
        .ref("security_group_ref", "security_group_id", .securityGroup),
    ], info: [
        InfoField("created_at"), InfoField("id"), InfoField("project_id"), InfoField("remote_group_id"),
        InfoField("revision_number"), InfoField("security_group_id"), InfoField("updated_at"),
    ])

    public static func references(_ record: ResourceRecord) -> [FieldReference] { fieldMap.references(record) }

    public static func label(_ record: ResourceRecord) -> String {
        let p = record.params
        var parts = [p["security_group_ref"]?["name"]?.stringValue ?? "?", p["direction"]?.stringValue ?? "?",
                     p["ether_type"]?.stringValue ?? "?", p["protocol"]?.stringValue ?? "any"]
        if let lo = p["port_range_min"]?.intValue {
            let hi = p["port_range_max"]?.intValue ?? lo
            parts.append(lo == hi ? "\(lo)" : "\(lo)-\(hi)")
        }
        if let g = p["remote_group_ref"]?["name"]?.stringValue {
            parts.append("group \(g)")
        } else if let a = p["remote_address_group_ref"]?["name"]?.stringValue {
            parts.append("address-group \(a)")
        } else if let ip = p["remote_ip_prefix"]?.stringValue {
            parts.append(ip)
        }
        return parts.joined(separator: " ")
    }

    public static let valueRules: [String: ValueRule] = [
        "direction": .oneOf(["ingress", "egress"]), "ether_type": .oneOf(["IPv4", "IPv6"]),
        "port_range_min": .int(0...65535), "port_range_max": .int(0...65535), "remote_ip_prefix": .cidr,
    ]

    /// Protocol names Neutron takes (Zed's list, or a number 0 to 255), and "any" (not in Zed's list: a
    /// destination that does not take it answers 400 at the create).
    static let protocols = ["ah", "dccp", "egp", "esp", "gre", "hopopt", "icmp", "igmp", "ipip", "ipv6-encap", "ipv6-frag",
                            "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "ospf", "pgm", "rsvp", "sctp",
                            "tcp", "udp", "udplite", "vrrp", "ip", "any"]

    public static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        let proto = record.params["protocol"] ?? .null
        if !proto.isNull {
            let ok = proto.stringValue.map { protocols.contains($0.lowercased()) || (Int($0).map { (0...255).contains($0) } ?? false) }
                ?? proto.intValue.map { (0...255).contains($0) } ?? false
            if !ok { out.append("params.protocol \(proto.jsonString()) is not a protocol name (tcp, udp, icmp…) or number 0 to 255") }
        }
        let icmp = ["icmp", "ipv6-icmp", "icmpv6", "1", "58"].contains(proto.stringValue?.lowercased() ?? "")
        if icmp {
            for key in ["port_range_min", "port_range_max"] {
                if let v = record.params[key]?.intValue, v > 255 { out.append("params.\(key) \(v) is not an ICMP type or code (0 to 255)") }
            }
        }
        if let prefix = record.params["remote_ip_prefix"]?.stringValue, Reference(record.params["remote_group_ref"]) != nil {
            out.append("params.remote_ip_prefix \(prefix) and params.remote_group_ref are both set (a rule has one remote)")
        }
        if let prefix = record.params["remote_ip_prefix"]?.stringValue, let cidr = CIDR(prefix),
           let e = record.params["ether_type"]?.stringValue, ["IPv4", "IPv6"].contains(e), cidr.address.isV4 != (e == "IPv4")
        {
            out.append("params.remote_ip_prefix \(prefix) is not an \(e) network (params.ether_type)")
        }
        if let lo = record.params["port_range_min"]?.intValue, let hi = record.params["port_range_max"]?.intValue, lo > hi,
           !["icmp", "ipv6-icmp", "icmpv6", "1", "58"].contains(record.params["protocol"]?.stringValue ?? "")
        {
            out.append("params.port_range_min \(lo) is greater than params.port_range_max \(hi)")
        }
        return out
    }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let rules = try await ctx.session.list(
            JSONValue.self,
            APIRequest(ServiceType.network, .GET, Neutron.securityGroupRules.path, query: [QueryItem("project_id", ctx.projectID)]),
            key: Neutron.securityGroupRules.plural
        ).collect().compactMap(\.objectValue)
        return try await boundedMap(rules, limit: 8) { rule in
            ResourceRecord(type: typeName, params: try await fieldMap.params(from: rule, refs: ctx.refs),
                           info: fieldMap.infoValues(from: rule))
        }
    }

    /// What a rule matches, with ids resolved: two rules with the same key are the same rule.
    struct MatchKey: Hashable {
        var direction: String?
        var ethertype: String?
        var proto: String?
        var min: Int?
        var max: Int?
        var prefix: String?
        var remoteGroup: String?
        var remoteAddressGroup: String?

        init(direction: String?, ethertype: String?, proto: String?, min: Int?, max: Int?, prefix: String?,
             remoteGroup: String?, remoteAddressGroup: String?)
        {
            self.direction = direction
            self.ethertype = ethertype
            self.proto = proto?.lowercased()
            self.min = min
            self.max = max
            // "any address" is written both ways.
            self.prefix = (prefix == "0.0.0.0/0" || prefix == "::/0") ? nil : prefix
            self.remoteGroup = remoteGroup
            self.remoteAddressGroup = remoteAddressGroup
        }

        init(api r: JSONValue) {
            self.init(direction: r["direction"]?.stringValue, ethertype: r["ethertype"]?.stringValue,
                      proto: r["protocol"]?.stringValue, min: r["port_range_min"]?.intValue, max: r["port_range_max"]?.intValue,
                      prefix: r["remote_ip_prefix"]?.stringValue, remoteGroup: r["remote_group_id"]?.stringValue,
                      remoteAddressGroup: r["remote_address_group_id"]?.stringValue)
        }
    }

    /// The rules of a group, from one listing of the project's rules per run.
    static func rules(of group: String, _ ctx: ImportContext) async throws -> [JSONValue] {
        let all = try await ctx.cache.value("project:/security-group-rules") {
            .array(try await ctx.session.list(
                JSONValue.self,
                APIRequest(ServiceType.network, .GET, Neutron.securityGroupRules.path, query: [QueryItem("project_id", ctx.projectID)]),
                key: Neutron.securityGroupRules.plural
            ).collect())
        }
        return (all.arrayValue ?? []).filter { $0["security_group_id"]?.stringValue == group }
    }

    static func desiredBody(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> (group: String, key: MatchKey, body: JSONObject) {
        var body = try await fieldMap.createBody(record, ctx)
        guard let group = body["security_group_id"]?.stringValue else {
            throw ReferenceError("params.security_group_ref is null")
        }
        if body["description"] == nil { body["description"] = nil }
        let key = MatchKey(api: .object(body))
        return (group, key, body)
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        let (group, key, body) = try await desiredBody(record, ctx)
        // A rule listed twice in the file is one rule: the first of them creates it.
        let create: ImportStep = await ctx.cache.claim("security-group-rule \(group) \(key)")
            ? .create(detail: "") { try await createRule(body, ctx) }
            : .ok(id: "", note: "listed more than once in the file: one rule")
        if group.hasPrefix(ReferenceResolver.placeholderPrefix) { return create }
        let existing = try await rules(of: group, ctx).filter { MatchKey(api: $0) == key }
        guard let rule = existing.first, let id = rule["id"]?.stringValue else { return create }
        if let desired = record.params["description"], (desired.stringValue ?? "") != (rule["description"]?.stringValue ?? "") {
            return .update(id: id, fields: ["description"],
                           changes: [FieldChange(field: "description", from: rule["description"], to: desired)]) {
                // Neutron rules cannot be updated: replace it.
                _ = try await ctx.session.send(APIRequest(ServiceType.network, .DELETE, Neutron.securityGroupRules.itemPath(id),
                                                          acceptedStatuses: [404]))
                _ = try await createRule(body, ctx)
            }
        }
        return .ok(id: id)
    }

    static func createRule(_ body: JSONObject, _ ctx: ImportContext) async throws -> String {
        do {
            let r = try await ctx.session.json(APIRequest(ServiceType.network, .POST, Neutron.securityGroupRules.path,
                                                          body: [Neutron.securityGroupRules.singular: .object(body)]), key: Neutron.securityGroupRules.singular)
            return r["id"]?.stringValue ?? ""
        } catch let e as OpenStackError where e.isConflict {
            // "Security group rule already exists. Rule id is <uuid>.": it is there, which is what we want.
            if let r = e.message.range(of: "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", options: .regularExpression) {
                return String(e.message[r])
            }
            return ""
        }
    }

    /// The groups whose rules the files describe completely, and so are reconciled:
    /// - every group with at least one rule in the rules file (after filters);
    /// - when security groups are imported in the same run, every group of security_groups.yml
    ///   (after filters), even with no rule in the rules file: the two files together say "no rules";
    /// - groups this run created (Neutron's automatic egress rules are not the file's).
    /// Groups the files do not mention are never touched. In those groups, rules the file does not
    /// list are deleted, each reported as a `changed` item (`--dry-run`: "would delete"), unless
    /// `--keep-unlisted-rules` (then only the automatic rules of groups created in this run go).
    /// A group with a rule that cannot be resolved is left alone: its wanted rules are unknown.
    public static func finish(_ records: [ResourceRecord], _ ctx: ImportContext) async -> [ItemResult] {
        var wanted: [String: Set<MatchKey>] = [:]
        var unsure: [String: String] = [:]
        var fileNames: [String: String] = [:]
        for r in records {
            if let (group, key, body) = try? await desiredBody(r, ctx) {
                wanted[group, default: []].insert(key)
                fileNames[group] = r.params["security_group_ref"]?["name"]?.stringValue
                if let remote = body["remote_group_id"]?.stringValue {
                    fileNames[remote] = r.params["remote_group_ref"]?["name"]?.stringValue
                }
            } else if let group = try? await ctx.resolve(.securityGroup, r, "security_group_ref") {
                unsure[group] = label(r)
            }
        }
        let createdGroups = await ctx.created.ids(SecurityGroupKind.name)
        var covered = createdGroups
        if ctx.kinds.contains(SecurityGroupKind.name) { covered.formUnion(await ctx.imported.ids(SecurityGroupKind.name)) }
        for g in covered where wanted[g] == nil { wanted[g] = [] }
        var results: [ItemResult] = []
        let groups = wanted.keys.filter { g in
            if g.hasPrefix(ReferenceResolver.placeholderPrefix) { return false }
            return createdGroups.contains(g) || !ctx.options.keepUnlistedRules
        }.sorted()
        for g in groups where unsure[g] != nil {
            results.append(ItemResult(kind: name, name: "\(fileNames[g] ?? g) unlisted rules", status: .skipped,
                                      message: "kept: rule '\(unsure[g]!)' of this group could not be resolved"))
        }
        let reconciled = groups.filter { unsure[$0] == nil }
        if reconciled.isEmpty { return results }
        let current: [String: [JSONValue]]
        do {
            current = try await freshRules(of: reconciled, ctx)
        } catch {
            return results + [ItemResult(kind: name, name: "unlisted rules", status: .failed,
                                         message: "cannot list the destination's rules: \(error)")]
        }
        let names = await groupNames(ctx).merging(fileNames) { $1 }
        for group in reconciled {
            let isNew = createdGroups.contains(group)
            let keys = wanted[group] ?? []
            for rule in current[group] ?? [] where !keys.contains(MatchKey(api: rule)) {
                guard let id = rule["id"]?.stringValue else { continue }
                let what = apiLabel(rule, names: names)
                let why = isNew ? "Neutron's automatic rule, not in the file" : "not in the file"
                if ctx.options.dryRun {
                    results.append(ItemResult(kind: name, name: what, status: .changed, message: "would delete: \(why) (rule \(id))",
                                              action: "deleted", id: id))
                    continue
                }
                do {
                    _ = try await ctx.session.send(APIRequest(ServiceType.network, .DELETE, Neutron.securityGroupRules.itemPath(id),
                                                              acceptedStatuses: [404]))
                    results.append(ItemResult(kind: name, name: what, status: .changed, message: "deleted: \(why) (rule \(id))",
                                              action: "deleted", id: id))
                } catch {
                    results.append(ItemResult(kind: name, name: what, status: .failed, message: "delete: \(error)"))
                }
            }
        }
        return results
    }

    /// The destination's current rules of these groups (asked now, 20 groups per call).
    static func freshRules(of groups: [String], _ ctx: ImportContext) async throws -> [String: [JSONValue]] {
        let chunks = stride(from: 0, to: groups.count, by: 20).map { Array(groups[$0..<min($0 + 20, groups.count)]) }
        let lists = try await boundedMap(chunks, limit: 4) { chunk in
            try await ctx.session.list(
                JSONValue.self,
                APIRequest(ServiceType.network, .GET, Neutron.securityGroupRules.path, query: chunk.map { QueryItem("security_group_id", $0) }),
                key: Neutron.securityGroupRules.plural
            ).collect()
        }
        var out: [String: [JSONValue]] = [:]
        for rule in lists.flatMap({ $0 }) {
            if let g = rule["security_group_id"]?.stringValue { out[g, default: []].append(rule) }
        }
        return out
    }

    /// Destination security group id -> name (the project's groups, listed once per run).
    static func groupNames(_ ctx: ImportContext) async -> [String: String] {
        let all = (try? await SecurityGroupKind.all(ctx)) ?? []
        var out: [String: String] = [:]
        for g in all { if let id = g["id"]?.stringValue { out[id] = g["name"]?.stringValue } }
        return out
    }

    /// A destination rule described the way `label` describes a record: "web ingress IPv4 tcp 443 0.0.0.0/0".
    static func apiLabel(_ r: JSONValue, names: [String: String]) -> String {
        func name(_ id: String) -> String { names[id] ?? id }
        var parts = [name(r["security_group_id"]?.stringValue ?? "?"), r["direction"]?.stringValue ?? "?",
                     r["ethertype"]?.stringValue ?? "?", r["protocol"]?.stringValue ?? "any"]
        if let lo = r["port_range_min"]?.intValue {
            let hi = r["port_range_max"]?.intValue ?? lo
            parts.append(lo == hi ? "\(lo)" : "\(lo)-\(hi)")
        }
        if let g = r["remote_group_id"]?.stringValue {
            parts.append("group \(name(g))")
        } else if let a = r["remote_address_group_id"]?.stringValue {
            parts.append("address-group \(a)")
        } else if let ip = r["remote_ip_prefix"]?.stringValue {
            parts.append(ip)
        }
        return parts.joined(separator: " ")
    }
}
