import Foundation
import OpenStack
import TestSupport

/// The network topology the pre-workload tests seed in a source project: every field the
/// network kinds must carry across.
enum NetworkTopology {
    static func post(_ s: CloudSession, _ path: String, _ key: String, _ body: JSONObject) async throws -> JSONValue {
        try await s.json(APIRequest(ServiceType.network, .POST, path, body: [key: .object(body)]), key: key)
    }

    static func id(_ v: JSONValue) -> String { v["id"]?.stringValue ?? "" }

    static func setTags(_ s: CloudSession, _ path: String, _ id: String, _ tags: [String]) async throws {
        _ = try await s.send(APIRequest(ServiceType.network, .PUT, "\(path)/\(id)/tags", body: ["tags": .array(tags.map(JSONValue.string))]))
    }

    /// Seed the topology; returns the names it created.
    static func seed(_ s: CloudSession) async throws {
        let public_ = try await s.named(Neutron.networks, "public").first!
        let netA = try await post(s, "/networks", "network", ["name": "net-a", "description": "front network"])
        try await setTags(s, "/networks", id(netA), ["web", "blue"])
        let netB = try await post(s, "/networks", "network", ["name": "net-b", "mtu": 1400])
        try await setTags(s, "/networks", id(netB), ["db"])
        let a4 = try await post(s, "/subnets", "subnet", [
            "name": "subnet-a4", "network_id": .string(id(netA)), "ip_version": 4, "cidr": "10.10.0.0/24",
            "gateway_ip": "10.10.0.1", "description": "v4 with pools",
            "allocation_pools": [["start": "10.10.0.100", "end": "10.10.0.150"], ["start": "10.10.0.10", "end": "10.10.0.50"]],
            "host_routes": [["destination": "192.168.60.0/24", "nexthop": "10.10.0.253"],
                            ["destination": "192.168.50.0/24", "nexthop": "10.10.0.254"]],
            "dns_nameservers": ["8.8.8.8", "1.1.1.1"],
        ])
        try await setTags(s, "/subnets", id(a4), ["v4"])
        _ = try await post(s, "/subnets", "subnet", [
            "name": "subnet-a6", "network_id": .string(id(netA)), "ip_version": 6, "cidr": "fd00:10::/64",
            "ipv6_address_mode": "slaac", "ipv6_ra_mode": "slaac",
        ])
        let b = try await post(s, "/subnets", "subnet", [
            "name": "subnet-b-nogw", "network_id": .string(id(netB)), "ip_version": 4, "cidr": "10.20.0.0/24",
            "gateway_ip": .null, "enable_dhcp": false,
        ])
        let router = try await post(s, "/routers", "router", [
            "name": "r1", "description": "edge router", "external_gateway_info": ["network_id": .string(public_.id)],
        ])
        try await setTags(s, "/routers", id(router), ["edge"])
        // Interface on the gateway IP of subnet-a4 (by subnet), and on an explicit IP of subnet-b.
        _ = try await s.addRouterInterface(router: id(router), subnetID: id(a4))
        let port = try await post(s, "/ports", "port", [
            "network_id": .string(id(netB)), "fixed_ips": [["subnet_id": .string(id(b)), "ip_address": "10.20.0.5"]],
        ])
        _ = try await s.addRouterInterface(router: id(router), portID: id(port))
        _ = try await s.send(APIRequest(ServiceType.network, .PUT, "/routers/\(id(router))",
                                        body: ["router": ["routes": [["destination": "172.16.0.0/16", "nexthop": "10.20.0.99"]]]]))

        let web = try await post(s, "/security-groups", "security_group", ["name": "web", "description": "web tier"])
        let app = try await post(s, "/security-groups", "security_group", ["name": "app", "description": "app tier"])
        let db = try await post(s, "/security-groups", "security_group", ["name": "db", "description": "database"])
        try await setTags(s, "/security-groups", id(db), ["data"])
        func rule(_ sg: JSONValue, _ body: JSONObject) async throws {
            var b = body
            b["security_group_id"] = .string(id(sg))
            if b["ethertype"] == nil { b["ethertype"] = "IPv4" }
            _ = try await post(s, "/security-group-rules", "security_group_rule", b)
        }
        try await rule(web, ["direction": "ingress", "protocol": "tcp", "port_range_min": 80, "port_range_max": 80,
                             "remote_ip_prefix": "0.0.0.0/0", "description": "http"])
        try await rule(web, ["direction": "ingress", "protocol": "tcp", "port_range_min": 443, "port_range_max": 443,
                             "remote_ip_prefix": "0.0.0.0/0"])
        try await rule(app, ["direction": "ingress", "protocol": "tcp", "port_range_min": 8080, "port_range_max": 8080,
                             "remote_group_id": .string(id(web))])
        try await rule(db, ["direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432,
                            "remote_group_id": .string(id(app))])
        try await rule(db, ["direction": "ingress", "protocol": "tcp", "port_range_min": 5432, "port_range_max": 5432,
                            "remote_group_id": .string(id(db)), "description": "replication"])
        let defaultSG = try await s.list(Neutron.securityGroups, query: [QueryItem("name", "default"),
                                                                          QueryItem("project_id", try await s.currentProjectID)]).collect().first!
        _ = try await post(s, "/security-group-rules", "security_group_rule", [
            "security_group_id": .string(defaultSG.id), "direction": "ingress", "ethertype": "IPv4", "protocol": "icmp",
            "remote_ip_prefix": "10.0.0.0/8",
        ])
    }

    /// A project's topology with ids replaced by names, for comparing two projects.
    static func snapshot(_ s: CloudSession) async throws -> JSONValue {
        let pid = try await s.currentProjectID
        func list(_ path: String, _ key: String, _ q: [QueryItem] = []) async throws -> [JSONValue] {
            try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, path, query: [QueryItem("project_id", pid)] + q), key: key).collect()
        }
        let nets = try await list("/networks", "networks")
        let subnets = try await list("/subnets", "subnets")
        let routers = try await list("/routers", "routers")
        let sgs = try await list("/security-groups", "security_groups")
        let rules = try await list("/security-group-rules", "security_group_rules")
        let ports = try await list("/ports", "ports", [QueryItem("device_owner", "network:router_interface")])
        let allNets = try await s.list(JSONValue.self, APIRequest(ServiceType.network, .GET, "/networks"), key: "networks").collect()
        var names: [String: String] = [:]
        for x in allNets + subnets + routers + sgs { names[x["id"]?.stringValue ?? ""] = x["name"]?.stringValue }
        func n(_ v: JSONValue?) -> JSONValue { v?.stringValue.flatMap { names[$0] }.map(JSONValue.string) ?? .null }
        func sorted(_ v: JSONValue?) -> JSONValue { .array((v?.arrayValue ?? []).sorted { $0.jsonString() < $1.jsonString() }) }
        func byName(_ items: [JSONValue], _ f: (JSONValue) -> JSONObject) -> JSONValue {
            var o: JSONObject = [:]
            for i in items { o[i["name"]?.stringValue ?? "?"] = .object(f(i)) }
            return .object(o)
        }
        var out: JSONObject = [:]
        out["networks"] = byName(nets) { (x: JSONValue) -> JSONObject in
            var o: JSONObject = [:]
            for k in ["description", "mtu", "admin_state_up", "port_security_enabled", "shared", "router:external"] {
                o[k] = x[k] ?? .null
            }
            o["tags"] = sorted(x["tags"])
            return o
        }
        out["subnets"] = byName(subnets) { (x: JSONValue) -> JSONObject in
            var o: JSONObject = [:]
            for k in ["cidr", "ip_version", "gateway_ip", "enable_dhcp", "ipv6_address_mode", "ipv6_ra_mode", "description",
                      "dns_nameservers"]
            {
                o[k] = x[k] ?? .null
            }
            o["network"] = n(x["network_id"])
            o["allocation_pools"] = sorted(x["allocation_pools"])
            o["host_routes"] = sorted(x["host_routes"])
            o["tags"] = sorted(x["tags"])
            return o
        }
        out["routers"] = byName(routers) { (x: JSONValue) -> JSONObject in
            var o: JSONObject = [:]
            o["description"] = x["description"] ?? .null
            o["gateway"] = n(x["external_gateway_info"]?["network_id"])
            o["enable_snat"] = x["external_gateway_info"]?["enable_snat"] ?? .null
            o["routes"] = sorted(x["routes"])
            o["tags"] = sorted(x["tags"])
            o["admin_state_up"] = x["admin_state_up"] ?? .null
            return o
        }
        let interfaces: [JSONValue] = ports.map { (p: JSONValue) -> JSONValue in
            let ips: [JSONValue] = (p["fixed_ips"]?.arrayValue ?? []).map { ip in .array([n(ip["subnet_id"]), ip["ip_address"] ?? .null]) }
            return .array([n(p["device_id"])] + ips)
        }
        out["router_interfaces"] = sorted(.array(interfaces))
        out["security_groups"] = byName(sgs) { (x: JSONValue) -> JSONObject in
            ["description": x["description"] ?? .null, "tags": sorted(x["tags"])]
        }
        let ruleRows: [JSONValue] = rules.map { (r: JSONValue) -> JSONValue in
            var o: JSONObject = [:]
            o["group"] = n(r["security_group_id"])
            o["remote_group"] = n(r["remote_group_id"])
            for k in ["direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix"] {
                o[k] = r[k] ?? .null
            }
            let d = r["description"]?.stringValue ?? ""
            o["description"] = d.isEmpty ? .null : .string(d)
            return .object(o)
        }
        out["security_group_rules"] = sorted(.array(ruleRows))
        return .object(out)
    }
}
