import Foundation
import OpenStack
import Resources

/// The destination must have everything a workload needs before any data moves: flavor,
/// image (re-image mode), keypair, security groups, networks, subnets, free fixed IPs (and
/// MACs in neutron mode), room in the quotas, and conversion hosts when data is copied.
enum Prerequisites {
    static func check(_ plan: WorkloadPlan, dst: CloudSession, resolver: ReferenceResolver, ledger: Ledger,
                      hosts: ConversionHostPair?) async throws -> [String]
    {
        var problems: [String] = []
        func resolve(_ what: String, _ type: RefType, _ ref: Reference) async -> String? {
            do { return try await resolver.resolve(type, ref) } catch { problems.append("\(what): \(error)") }
            return nil
        }
        var flavorID: String?
        flavorID = await resolve("flavor", .flavor, plan.flavor)
        if let image = plan.image { _ = await resolve("image", .image, image) }
        if let key = plan.keyName, try await dst.keypair(key) == nil {
            problems.append("keypair '\(key)' not found in the destination")
        }
        var groups = plan.securityGroups
        for p in plan.ports { groups += p.securityGroups ?? [] }
        for g in Set(groups) { _ = await resolve("security group", .securityGroup, g) }
        if plan.volumes.contains(where: { $0.existingDestination == nil }) && hosts == nil {
            problems.append("its volumes need conversion hosts: run `os-migrate conversion-hosts deploy`")
        }
        // Our own ports (a resumed run) may hold the addresses already.
        let ours = Set(try ledger.resources(plan.sourceID).filter { $0.kind == "port" }.map(\.resourceID))
        for (i, port) in plan.ports.enumerated() {
            guard let net = await resolve("ports[\(i)] network", .network, port.network) else { continue }
            for ip in port.fixedIPs {
                if let s = ip.subnet { _ = await resolve("ports[\(i)] subnet", .subnet, s) }
                let holders = try await dst.list(Neutron.ports, query: [QueryItem("network_id", net), QueryItem("fixed_ips", "ip_address=\(ip.ip)")])
                    .collect().filter { !ours.contains($0.id) }
                if let h = holders.first {
                    problems.append("fixed IP \(ip.ip) on network '\(port.network.name)' is used by port \(h.id) (\(h.deviceOwner ?? "no owner"))")
                }
            }
            if plan.portMode == .neutron, let mac = port.macAddress {
                let holders = try await dst.list(Neutron.ports, query: [QueryItem("network_id", net), QueryItem("mac_address", mac)])
                    .collect().filter { !ours.contains($0.id) }
                if let h = holders.first { problems.append("MAC \(mac) on network '\(port.network.name)' is used by port \(h.id)") }
            }
        }
        if plan.floatingIPMode != .skip {
            for f in plan.floatingIPs { if let n = f.network { _ = await resolve("floating IP network", .network, n) } }
        }
        problems += try await quotaProblems(plan, dst: dst, flavorID: flavorID)
        return problems
    }

    /// Room for the volumes (count, GiB) and the server (instances, cores, RAM).
    static func quotaProblems(_ plan: WorkloadPlan, dst: CloudSession, flavorID: String?) async throws -> [String] {
        var out: [String] = []
        let newVolumes = plan.volumes.filter { $0.existingDestination == nil }
        if !newVolumes.isEmpty {
            let l = try await dst.blockStorageLimits()["absolute"]
            func room(_ max: String, _ used: String) -> Int? {
                guard let m = l?[max]?.intValue, m >= 0 else { return nil }
                return m - (l?[used]?.intValue ?? 0)
            }
            if let r = room("maxTotalVolumes", "totalVolumesUsed"), r < newVolumes.count {
                out.append("volume quota: \(newVolumes.count) needed, \(r) left")
            }
            if let r = room("maxTotalVolumeGigabytes", "totalGigabytesUsed"), r < plan.gigabytes {
                out.append("volume gigabytes quota: \(plan.gigabytes) GiB needed, \(r) GiB left")
            }
        }
        let l = try await dst.computeLimits()["absolute"]
        func room(_ max: String, _ used: String) -> Int? {
            guard let m = l?[max]?.intValue, m >= 0 else { return nil }
            return m - (l?[used]?.intValue ?? 0)
        }
        if let r = room("maxTotalInstances", "totalInstancesUsed"), r < 1 { out.append("instance quota: none left") }
        if let flavorID, let flavor = try await dst.find(Nova.flavors, id: flavorID) {
            if let r = room("maxTotalCores", "totalCoresUsed"), r < flavor.vcpus { out.append("cores quota: \(flavor.vcpus) needed, \(r) left") }
            if let r = room("maxTotalRAMSize", "totalRAMUsed"), r < flavor.ram { out.append("RAM quota: \(flavor.ram) MiB needed, \(r) MiB left") }
        }
        return out
    }
}
