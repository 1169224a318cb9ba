import Foundation
import OpenStack
import Resources

/// The destination must have everything a workload needs before any data moves: flavor,
/// image (re-image mode), keypair, security groups, networks, subnets, free fixed IPs (and
/// MACs in neutron mode), room in the quotas, and conversion hosts when data is copied.
enum Prerequisites {
    ///
    /// On a resumed run, what the interrupted run already made in the destination (volumes,
    /// ports, the server and the ports Nova made for it) counts as ours, not as a conflict.
    static func check(_ plan: WorkloadPlan, dst: CloudSession, resolver: ReferenceResolver, ledger: Ledger,
                      hosts: ConversionHostPair?, resuming: Bool = false, planned: PlannedNames = PlannedNames()) async throws -> [String]
    {
        var problems: [String] = []
        func resolve(_ what: String, _ type: RefType, _ ref: Reference) async -> String? {
            do { return try await resolver.resolve(type, ref) } catch {
                // A dry run's earlier kinds would create it.
                if !planned.contains(type, ref) { problems.append("\(what): \(error)") }
            }
            return nil
        }
        var flavorID: String?
        flavorID = await resolve("flavor", .flavor, plan.flavor)
        if let image = plan.image { _ = await resolve("image", .image, image) }
        if let key = plan.keyName, !planned.contains(kind: "keypairs", name: key), try await dst.keypair(key) == nil {
            problems.append("keypair '\(key)' not found in the destination")
        }
        var groups = plan.securityGroups
        for p in plan.ports { groups += p.securityGroups ?? [] }
        for g in Set(groups) { _ = await resolve("security group", .securityGroup, g) }
        if plan.volumes.contains(where: { $0.existingDestination == nil }) && hosts == nil {
            problems.append("its volumes need conversion hosts: run `os-migrate conversion-hosts deploy`")
        }
        // Our own ports (a resumed run) may hold the addresses already: recorded ones, and those
        // of the server the interrupted run created (Nova made them; its name is the workload's).
        let all = try ledger.resources(plan.sourceID)
        let recorded = all.filter { $0.state == .created || $0.state == .kept }
        var ours = Set(recorded.filter { $0.kind == "port" }.map(\.resourceID))
        // Ports an interrupted run was creating (intent recorded, answer not): an unbound port with
        // the planned MAC or fixed IP is that port, not a conflict; the ports step adopts it.
        let intendedPorts = Set(all.filter { $0.kind == "port" && $0.state == .intended }.map(\.role))
        var servers = Set(recorded.filter { $0.kind == "server" }.map(\.resourceID))
        if resuming {
            for s in try await dst.named(Nova.servers, plan.name) {
                servers.insert(s.id)
                // Nova may still be allocating its ports (made without a device id, then bound):
                // until the server leaves BUILD they cannot be told from someone else's.
                if s.status.uppercased() == "BUILD" { try await settled(s.id, dst: dst) }
            }
        }
        for server in servers {
            for p in try await dst.list(Neutron.ports, query: [QueryItem("device_id", server)]).collect() { ours.insert(p.id) }
        }
        for (i, port) in plan.ports.enumerated() {
            guard let net = await resolve("ports[\(i)] network", .network, port.network) else { continue }
            if intendedPorts.contains("dst-port:\(i)") {
                let unbound = try await dst.list(Neutron.ports, query: [QueryItem("network_id", net)]).collect()
                    .filter { ($0.deviceID ?? "").isEmpty }
                for p in unbound where (port.macAddress != nil && p.macAddress == port.macAddress)
                    || (port.macAddress == nil && p.fixedIPs?.contains { $0.ipAddress == port.fixedIPs.first?.ip } == true)
                {
                    ours.insert(p.id)
                }
            }
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
        let newVolumes = plan.volumes.indices.filter { i in
            plan.volumes[i].existingDestination == nil && !recorded.contains { $0.role == "dst-volume:\(i)" }
        }.map { plan.volumes[$0] }
        problems += try await placementProblems(newVolumes, dst: dst)
        problems += try await quotaProblems(newVolumes, serverExists: !servers.isEmpty, dst: dst, flavorID: flavorID)
        return problems
    }

    /// Waits (bounded) for a server an interrupted run asked for to leave BUILD, whatever it ends in.
    static func settled(_ serverID: String, dst: CloudSession, timeout: Double = 300) async throws {
        _ = try await Waiter.wait("destination server \(serverID) (still building)", service: ServiceType.compute, timeout: timeout,
                                  until: ["ACTIVE", "SHUTOFF", "ERROR"], failOn: [], fetch: { try await dst.find(Nova.servers, id: serverID) },
                                  status: { $0.status })
    }

    /// The volume types and availability zones the new volumes need exist (after mapping).
    static func placementProblems(_ volumes: [WorkloadPlan.Volume], dst: CloudSession) async throws -> [String] {
        guard volumes.contains(where: { $0.volumeType != nil || $0.availabilityZone != nil }) else { return [] }
        let options = try await Volumes.placementOptions(dst)
        var out: [String] = []
        for v in volumes {
            let spec = VolumeSpec(name: v.name, size: max(v.size, 1), volumeType: v.volumeType, availabilityZone: v.availabilityZone)
            if let p = Volumes.placementProblem(spec, types: options.types, zones: options.zones, mapOptions: .workloads) {
                let line = "volume '\(v.name)': " + p
                if !out.contains(line) { out.append(line) }
            }
        }
        return out
    }

    /// Room for the volumes still to create (count, GiB) and the server (instances, cores, RAM)
    /// unless it exists already.
    static func quotaProblems(_ newVolumes: [WorkloadPlan.Volume], serverExists: Bool, dst: CloudSession,
                              flavorID: String?) async throws -> [String]
    {
        var out: [String] = []
        let gigabytes = newVolumes.reduce(0) { $0 + $1.size }
        if !newVolumes.isEmpty {
            let l = try await dst.blockStorageLimits()["absolute"]
            func room(_ max: String, _ used: String) -> Int? {
                guard let m = l?[max]?.intValue, m >= 0 else { return nil }
                return m - (l?[used]?.intValue ?? 0)
            }
            if let r = room("maxTotalVolumes", "totalVolumesUsed"), r < newVolumes.count {
                out.append("volume quota: \(newVolumes.count) needed, \(r) left")
            }
            if let r = room("maxTotalVolumeGigabytes", "totalGigabytesUsed"), r < gigabytes {
                out.append("volume gigabytes quota: \(gigabytes) GiB needed, \(r) GiB left")
            }
        }
        if serverExists { return out }
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
