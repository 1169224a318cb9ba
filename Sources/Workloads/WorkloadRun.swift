import DataPlane
import Foundation
import OpenStack
import Resources

/// The effects of one workload's migration: each step creates what it needs, records it in
/// the ledger first, and finds it there again when the run is resumed.
struct WorkloadRun: Sendable {
    let migrator: WorkloadMigrator
    let plan: WorkloadPlan
    let resolver: ReferenceResolver

    var src: CloudSession { migrator.src }
    var dst: CloudSession { migrator.dst }
    var ledger: Ledger { migrator.ledger }
    var timeout: Double { migrator.options.timeout }
    var id: String { plan.sourceID }
    var tempName: String { "os-migrate-\(plan.name)" }

    func hosts() throws -> ConversionHostPair {
        guard let h = migrator.hosts else {
            throw ConfigError("workload '\(plan.name)' needs conversion hosts to copy its volumes: run `os-migrate conversion-hosts deploy`")
        }
        return h
    }

    /// The volumes whose data moves (data_copy true).
    var copied: [(index: Int, volume: WorkloadPlan.Volume)] {
        plan.volumes.enumerated().filter { $0.element.existingDestination == nil }.map { ($0.offset, $0.element) }
    }

    func perform(_ step: MigrationStep) async throws {
        switch step {
        case .stage, .attachSource, .createVolumes, .attachDestination, .copy: try await transfer()
        case .detach: try await detach()
        case .ports: try await createPorts()
        case .server: try await createServer()
        case .floatingIPs: try await floatingIPs()
        case .cleanup: try await cleanupSource()
        }
    }

    // MARK: ledger helpers

    /// What the ledger holds under `role` once it exists (not an intent whose create was
    /// interrupted, not something released).
    func recorded(_ role: String) throws -> Ledger.Resource? {
        guard let r = try ledger.resource(id, role: role), r.state != .intended, r.state != .released else { return nil }
        return r
    }

    /// The resource recorded under `role`, or the one `create` makes (recorded at once). `adopt`
    /// finds one an interrupted run created but could not record.
    func ensure(_ role: String, _ cloud: CloudSide, _ kind: String, detail: [String: String] = [:], state: Ledger.Resource.State = .created,
                adopt: (() async throws -> String?)? = nil, create: () async throws -> String) async throws -> String
    {
        if let r = try recorded(role) { return r.resourceID }
        if let adopt, let found = try await adopt() {
            try ledger.record(id, cloud: cloud, kind: kind, role: role, id: found, detail: detail, state: state)
            return found
        }
        // The intent first: what a kill after the cloud's answer leaves is found again as ours.
        try ledger.record(id, cloud: cloud, kind: kind, role: role, id: "", detail: detail, state: .intended)
        let new: String
        do {
            new = try await create()
            WorkloadMigrator.injectedExit(inside: role)
        } catch {
            // The request may have been applied and only its answer lost (a reset connection, a
            // timeout): what `adopt` finds now is ours, recorded instead of leaked.
            if let adopt, let found = try? await adopt() {
                try ledger.record(id, cloud: cloud, kind: kind, role: role, id: found, detail: detail, state: state)
                return found
            }
            throw error
        }
        try ledger.record(id, cloud: cloud, kind: kind, role: role, id: new, detail: detail, state: state)
        return new
    }

    func waitVolume(_ s: CloudSession, _ vid: String, _ status: String) async throws -> Volume {
        try await Waiter.wait("volume \(vid)", service: ServiceType.blockStorage, timeout: timeout, until: [status],
                              fetch: { try await s.find(Cinder.volumes, id: vid) }, status: { $0.status })
    }

    func waitSnapshot(_ sid: String) async throws {
        _ = try await Waiter.wait("snapshot \(sid)", service: ServiceType.blockStorage, timeout: timeout, until: ["available"],
                                  fetch: { try await src.find(Cinder.snapshots, id: sid) }, status: { $0.status })
    }

    /// A temporary resource of ours by its exact name (an interrupted run made it).
    func adoptNamed<T: NamedResource>(_ c: APICollection<T>, _ s: CloudSession, _ name: String, status: (T) -> Bool = { _ in true })
        async throws -> String?
    {
        try await s.list(c, query: [QueryItem("name", name)]).collect().first { $0.name == name && status($0) }?.id
    }

    /// The source-side volume each copied volume is read from.
    func stagedVolume(_ v: WorkloadPlan.Volume) throws -> String {
        switch v.staging {
        case .detach: return v.sourceID ?? ""
        case .snapshot, .serverImage:
            guard let r = try recorded("staged-volume:boot") else {
                throw LedgerGap("the staged boot volume of \(plan.name) is not recorded")
            }
            return r.resourceID
        }
    }

    // MARK: steps

    func stage(_ v: WorkloadPlan.Volume) async throws {
        switch v.staging {
        case .snapshot:
            _ = try await temporaryVolume(of: v, Temporary(snapshotRole: "boot-snapshot", volumeRole: "staged-volume:boot", imageRole: "boot-image",
                                                           name: tempName + "-boot", snapshotDescription: "os-migrate: temporary snapshot of a boot volume",
                                                           volumeDescription: "os-migrate: temporary copy of a boot volume"))
        case .serverImage:
            _ = try await temporaryVolume(of: v, Temporary(snapshotRole: "boot-snapshot", volumeRole: "staged-volume:boot", imageRole: "boot-image",
                                                           name: tempName + "-boot", snapshotDescription: "",
                                                           volumeDescription: "os-migrate: temporary copy of a boot disk"))
        case .detach:
            guard let vid = v.sourceID else { return }
            // Recorded before the detach, so a kill in between still re-attaches it.
            _ = try await ensure("detached:\(vid)", .src, "detachment", detail: ["server": plan.sourceID, "device": v.device]) { vid }
            let vol = try await src.get(Cinder.volumes, vid)
            if vol.attachments.contains(where: { $0.serverID == plan.sourceID }) {
                try await src.detachVolume(server: plan.sourceID, volume: vid)
            }
            try await waitStaged(vid)
        }
    }

    /// Wait until a staged source volume is ready for the source conversion host: available, or
    /// already attached there (a rerun of the transfer finds it where the cut run left it).
    func waitStaged(_ vid: String) async throws {
        let host = migrator.hosts?.src.serverID
        _ = try await Waiter.wait("volume \(vid)", service: ServiceType.blockStorage, timeout: timeout, until: ["available", "staged"],
                                  fetch: { try await src.find(Cinder.volumes, id: vid) },
                                  status: { v in v.status == "in-use" && v.attachments.contains { $0.serverID != nil && $0.serverID == host } ? "staged" : v.status })
    }

    /// The roles, name and descriptions of a temporary source volume and what it is made from.
    struct Temporary {
        var snapshotRole: String
        var volumeRole: String
        var imageRole: String
        var name: String
        var snapshotDescription: String
        var volumeDescription: String
    }

    /// A temporary source volume holding `v` as it is now: a snapshot of it made into a volume,
    /// or, for an image-booted server's disk, a server image made into a volume. Each is recorded
    /// under its role before it is made and found again after a kill.
    func temporaryVolume(of v: WorkloadPlan.Volume, _ t: Temporary) async throws -> String {
        let tmp: String
        if v.staging == .serverImage {
            let image = try await ensure(t.imageRole, .src, "image", adopt: {
                try await adoptNamed(Glance.images, src, t.name) { !["killed", "deleted"].contains($0.status) }
            }) {
                try await src.createServerImage(plan.sourceID, name: t.name)
            }
            let img = try await Waiter.wait("image \(image)", service: ServiceType.image, timeout: timeout, until: ["active"],
                                            failOn: ["killed", "deleted"], fetch: { try await src.findImage(id: image) }, status: { $0.status })
            let size = max(Int(((img.size ?? 0) + (1 << 30) - 1) >> 30), img.minDisk ?? 0, 1)
            tmp = try await ensure(t.volumeRole, .src, "volume", adopt: {
                try await adoptNamed(Cinder.volumes, src, t.name) { !$0.status.hasPrefix("error") }
            }) {
                try await src.create(Cinder.volumes, ["imageRef": .string(image), "size": .int(size), "name": .string(t.name),
                                                      "description": .string(t.volumeDescription)]).id
            }
        } else {
            let snap = try await ensure(t.snapshotRole, .src, "snapshot", adopt: {
                try await adoptNamed(Cinder.snapshots, src, t.name) { $0.volumeID == v.sourceID && !$0.status.hasPrefix("error") }
            }) {
                try await src.json(APIRequest(ServiceType.blockStorage, .POST, "/snapshots", body: ["snapshot": [
                    "volume_id": .string(v.sourceID ?? ""), "force": true, "name": .string(t.name),
                    "description": .string(t.snapshotDescription),
                ]]), key: "snapshot")["id"]?.stringValue ?? ""
            }
            try await waitSnapshot(snap)
            tmp = try await ensure(t.volumeRole, .src, "volume", adopt: {
                try await adoptNamed(Cinder.volumes, src, t.name) { $0.snapshotID == snap && !$0.status.hasPrefix("error") }
            }) {
                try await src.create(Cinder.volumes, ["snapshot_id": .string(snap), "size": .int(v.size), "name": .string(t.name),
                                                      "description": .string(t.volumeDescription)]).id
            }
        }
        try await waitStaged(tmp)
        return tmp
    }

    /// Attach volumes to a conversion host; the attachment is recorded before it is made (so a
    /// kill in between is still undone), then again with the path the volume has on the host.
    ///
    /// `keep`: a warm sync's destination attachment, kept between passes and through a failed
    /// cutover (ledger state `kept`: a pass's cleanup and a rollback leave it; the cutover's
    /// `detach` step releases it). An attachment recorded as kept stays kept when attached again.
    func attach(_ host: ConversionHost, session: CloudSession, side: CloudSide, volumes: [String], keep: Bool = false) async throws {
        // Side by side: each attach waits on Nova and Cinder (lsblk discovery takes its lock in turn).
        _ = try await boundedMap(volumes, limit: 4) { vid in
            let role = "\(side.rawValue)-attach:\(vid)"
            let kept = try keep || self.recorded(role)?.state == .kept
            let state: Ledger.Resource.State = kept ? .kept : .created
            try self.ledger.record(self.id, cloud: side, kind: "attachment", role: role, id: vid, detail: ["host": host.serverID], state: state)
            let path = try await host.attach(volumeID: vid, session: session, timeout: self.timeout)
            try self.ledger.record(self.id, cloud: side, kind: "attachment", role: role, id: vid, detail: ["host": host.serverID, "path": path],
                                   state: state)
        }
    }

    /// The destination volume of `plan.volumes[i]`, created empty (sized, typed, bootable, with its
    /// image metadata) unless the ledger or an interrupted run has it. `staged` is the volume its
    /// data is read from; `keep`: made by a warm sync, it outlives a failed cutover.
    func ensureDestinationVolume(_ i: Int, _ v: WorkloadPlan.Volume, staged: String, keep: Bool = false) async throws -> String {
        if let r = try recorded("dst-volume:\(i)") { return r.resourceID }
        let stagedVolume = v.size > 0 && v.staging != .serverImage ? nil : try await src.get(Cinder.volumes, staged)
        let size = v.size > 0 ? v.size : stagedVolume?.size ?? 1
        let origin = v.sourceID ?? staged
        let vid = try await ensure("dst-volume:\(i)", .dst, "volume", detail: ["device": v.device, "source": staged], state: keep ? .kept : .created, adopt: {
            // One an interrupted run created (its answer lost, or killed before recording it):
            // created with our source key, never attached to a server.
            try await dst.list(Cinder.volumes, query: [QueryItem("name", v.name)]).collect().first {
                $0.name == v.name && $0.metadata?[Volumes.sourceKey] == origin && !$0.status.hasPrefix("error") && $0.attachments.isEmpty
            }?.id
        }) {
            var body: JSONObject = ["size": .int(size), "name": .string(v.name),
                                    "metadata": [Volumes.sourceKey: .string(origin)]]
            if let d = v.description { body["description"] = .string(d) }
            if let t = v.volumeType { body["volume_type"] = .string(t) }
            if let a = v.availabilityZone { body["availability_zone"] = .string(a) }
            return try await dst.create(Cinder.volumes, body).id
        }
        _ = try await waitVolume(dst, vid, "available")
        if v.isBoot { try await dst.setVolumeBootable(vid, true) }
        // A boot disk made from a server snapshot carries the image properties (UEFI, disk
        // bus, …) on the temporary volume Cinder made from it; the keys naming that temporary
        // image are left out.
        let imageMetadata = v.staging == .serverImage
            ? (stagedVolume?.volumeImageMetadata ?? [:]).filter { !Self.temporaryImageKeys.contains($0.key) } : v.imageMetadata
        try await dst.setVolumeImageMetadata(vid, imageMetadata)
        return vid
    }

    /// Image metadata Cinder copies from the temporary server snapshot that describe it, not the disk.
    static let temporaryImageKeys: Set<String> = ["image_id", "image_name", "checksum", "size", "os_hash_algo", "os_hash_value",
                                                  "image_location", "image_state", "image_type", "instance_uuid", "base_image_ref",
                                                  "owner_id", "owner_project_name", "owner_user_name", "user_id", "boot_roles"]

    func destinationVolume(_ index: Int) throws -> String {
        guard let r = try recorded("dst-volume:\(index)") else {
            throw LedgerGap("destination volume \(index) of \(plan.name) is not recorded")
        }
        return r.resourceID
    }

    /// One volume's copy: from the staged source at `srcPath` on the source host into the
    /// destination volume `target` at `dstPath` on the destination host.
    struct CopyJob: Sendable {
        var device: String
        var source: String
        var srcPath: String
        var target: String
        var dstPath: String
    }

    /// A copied volume (`plan.volumes[index]`) and the source-side volume its data is read from.
    struct StagedCopy: Sendable {
        var index: Int
        var volume: WorkloadPlan.Volume
        var staged: String
    }

    /// The copy jobs of the volumes in `volumes` not yet done, from the recorded attachments.
    func copyJobs(_ volumes: [StagedCopy], skipping done: Set<String> = []) throws -> [CopyJob] {
        try volumes.compactMap { s in
            let (i, v, staged) = (s.index, s.volume, s.staged)
            let target = try destinationVolume(i)
            let device = v.device.isEmpty ? "volume\(i)" : v.device
            if done.contains("\(device)\u{0}\(target)") { return nil }
            guard let sp = try recorded("src-attach:\(staged)")?.details["path"],
                  let dp = try recorded("dst-attach:\(target)")?.details["path"]
            else { throw LedgerGap("attachment paths of \(plan.name) \(device) are not recorded") }
            return CopyJob(device: device, source: staged, srcPath: sp, target: target, dstPath: dp)
        }
    }

    /// Run the copies, `copyParallel` at a time. The destination's chunk map is kept under the
    /// volume's id; a volume no copy has begun on is known to be zero (nothing of it is read);
    /// `trustMap`: the map's chunks are not read again (a volume only our copies have written).
    func runCopies(_ jobs: [CopyJob], trustMap: Bool = false) async throws -> [(CopyJob, CopyResult)] {
        let h = try hosts()
        let options = migrator.options
        let sink = migrator.sink
        let name = plan.name
        let begun = Set(try ledger.events(id).filter { $0.step == "copy-begun" }.map(\.message))
        return try await boundedMap(jobs, limit: max(1, options.copyParallel)) { job in
            var req = CopyRequest(source: VolumeLocation(endpoint: h.link, path: job.srcPath),
                                  destination: VolumeLocation(endpoint: h.dst.ssh, path: job.dstPath))
            req.chunkSize = options.chunkSize
            req.streams = options.streams
            req.agentExecutable = options.agentExecutable
            req.targetKey = job.target
            // Every target is a volume this workload created: empty until a copy began on it.
            req.targetIsZero = !begun.contains(job.target)
            req.trustMap = trustMap && begun.contains(job.target)
            try self.ledger.log(self.id, step: "copy-begun", job.target)
            let r = try await runCopy(req) { p in
                sink.progress(ProgressEvent(kind: WorkloadMigrator.kind, name: "\(name) \(job.device)", phase: "copy",
                                            done: Int64(p.bytesDone), total: Int64(p.bytesTotal), rate: p.rate))
            }
            return (job, r)
        }
    }

    /// The steps from staging to the verified copy (`MigrationStep.transfer`), run as one
    /// pipeline per volume: each volume is staged, attached to both hosts and copied as soon as
    /// it is ready, so a data volume's copy does not wait for the boot volume's snapshot (at most
    /// 4 volumes in flight, `copyParallel` copies at once). Every part is recorded as it is
    /// made and found again on a rerun: the pipeline resumes wherever it was cut.
    func transfer() async throws {
        let h = try hosts()
        for (i, v) in plan.volumes.enumerated() {
            if let existing = v.existingDestination {
                try ledger.record(id, cloud: .dst, kind: "volume", role: "dst-volume:\(i)", id: existing, state: .kept)
            }
        }
        let done = Set(try ledger.copies(id).map { "\($0.device)\u{0}\($0.destinationVolume)" })
        // After a warm sync the destination holds what the last pass wrote, and only our copies
        // wrote it: the final pass takes the map's word for the rest.
        let synced = try !ledger.syncPasses(id).isEmpty
        let copySlots = Limiter(max(1, migrator.options.copyParallel))
        _ = try await boundedMap(copied, limit: 4) { i, v in
            try await self.stage(v)
            let staged = try self.stagedVolume(v)
            async let sourceSide: Void = self.attach(h.src, session: self.src, side: .src, volumes: [staged])
            let target = try await self.ensureDestinationVolume(i, v, staged: staged)
            try await self.attach(h.dst, session: self.dst, side: .dst, volumes: [target])
            try await sourceSide
            guard let job = try self.copyJobs([StagedCopy(index: i, volume: v, staged: staged)], skipping: done).first else { return }
            try await copySlots.run {
                for (job, r) in try await self.runCopies([job], trustMap: synced) {
                    try self.ledger.saveCopy(Ledger.Copy(
                        workload: self.id, device: job.device, sourceVolume: job.source, destinationVolume: job.target,
                        size: Int64(r.sourceSize), digest: r.digest, bytesCopied: Int64(r.bytesCopied), bytesZero: Int64(r.bytesZero),
                        bytesReused: Int64(r.bytesReused), bytesOnWire: Int64(r.bytesOnWire), seconds: r.seconds, verifiedAt: Date()))
                    try await Volumes.recordVerifiedCopy(self.dst, volume: job.target, digest: r.digest)
                }
            }
        }
    }

    /// Detach every volume the conversion hosts hold for this workload (`includingKept`: a warm
    /// sync's destination attachments too, before the server is made from those volumes).
    func detach(includingKept: Bool = true) async throws {
        let h = try hosts()
        let states: [Ledger.Resource.State] = includingKept ? [.created, .kept] : [.created]
        let attached = try states.flatMap { try ledger.resources(id, state: $0) }.filter { $0.kind == "attachment" }
        _ = try await boundedMap(attached, limit: 4) { r in
            let (host, session) = r.cloud == CloudSide.src.rawValue ? (h.src, self.src) : (h.dst, self.dst)
            try await host.detach(volumeID: r.resourceID, session: session, timeout: self.timeout)
            try self.ledger.setState(r, .released)
        }
    }

    func createPorts() async throws {
        guard plan.portMode == .neutron else { return }
        for (i, port) in plan.ports.enumerated() {
            _ = try await ensure("dst-port:\(i)", .dst, "port", adopt: { try await unusedPort(port) }) {
                try await dst.create(Neutron.ports, try await portBody(port))
                    .id
            }
        }
    }

    /// A port an interrupted run created for `port`: on its network, with its MAC or first fixed
    /// IP, bound to no device (the prerequisites found these free before the run began).
    func unusedPort(_ port: WorkloadPlan.Port) async throws -> String? {
        let net = try await resolver.resolve(.network, port.network)
        var query = [QueryItem("network_id", net)]
        if let mac = port.macAddress {
            query.append(QueryItem("mac_address", mac))
        } else if let ip = port.fixedIPs.first?.ip {
            query.append(QueryItem("fixed_ips", "ip_address=\(ip)"))
        } else {
            return nil
        }
        return try await dst.list(Neutron.ports, query: query).collect().first { ($0.deviceID ?? "").isEmpty }?.id
    }

    func portBody(_ port: WorkloadPlan.Port) async throws -> JSONObject {
        var body: JSONObject = ["network_id": .string(try await resolver.resolve(.network, port.network))]
        var ips: [JSONValue] = []
        for ip in port.fixedIPs {
            var e: JSONObject = ["ip_address": .string(ip.ip)]
            if let s = ip.subnet { e["subnet_id"] = .string(try await resolver.resolve(.subnet, s)) }
            ips.append(.object(e))
        }
        body["fixed_ips"] = .array(ips)
        if let mac = port.macAddress { body["mac_address"] = .string(mac) }
        if port.portSecurityEnabled == false {
            body["port_security_enabled"] = false
            body["security_groups"] = .array([])
        } else {
            var groups: [JSONValue] = []
            for g in port.securityGroups ?? plan.securityGroups { groups.append(.string(try await resolver.resolve(.securityGroup, g))) }
            body["security_groups"] = .array(groups)
            if !port.allowedAddressPairs.isEmpty { body["allowed_address_pairs"] = .array(port.allowedAddressPairs) }
        }
        if let v = port.vnicType, v != "normal" { body["binding:vnic_type"] = .string(v) }
        return body
    }

    func createServer() async throws {
        let bootVolume = try plan.volumes.enumerated().first { $0.element.isBoot }.map { try destinationVolume($0.offset) }
        let serverID = try await ensure("dst-server", .dst, "server", adopt: {
            // A server an interrupted run created (or whose create answer was lost): same name,
            // and our boot volume attached, or (re-image mode) our data volumes or none.
            let same = try await dst.named(Nova.servers, plan.name).filter { $0.status != "DELETED" }
            if let bootVolume { return same.first { ($0.volumesAttached ?? []).contains { $0.id == bootVolume } }?.id }
            let data = Set(try plan.volumes.indices.map { try destinationVolume($0) })
            return same.first { Set(($0.volumesAttached ?? []).map(\.id)) == data }?.id
        }) {
            try await dst.json(APIRequest(ServiceType.compute, .POST, "/servers", body: ["server": .object(try await serverBody(bootVolume))]),
                               key: "server")["id"]?.stringValue ?? ""
        }
        try ledger.setDestination(id, serverID)
        _ = try await Waiter.wait("destination server \(plan.name)", service: ServiceType.compute, timeout: min(timeout, 900),
                                  until: ["ACTIVE"], failOn: ["ERROR"], fetch: { try await dst.find(Nova.servers, id: serverID) },
                                  status: { $0.status }, detail: { $0.faultMessage })
        if plan.portMode == .nova { try await completeNovaPorts(serverID) }
    }

    /// Nova mode: Nova made the ports from a network and a fixed IP; what else the source ports
    /// had (port security off, their own security groups, allowed address pairs) is set on them
    /// now. Idempotent: only what differs is written.
    func completeNovaPorts(_ serverID: String) async throws {
        let ports = try await dst.list(Neutron.ports, query: [QueryItem("device_id", serverID)]).collect()
        let serverGroups = plan.securityGroups.map(\.name).sorted()
        for wanted in plan.ports {
            guard let ip = wanted.fixedIPs.first?.ip,
                  let port = ports.first(where: { ($0.fixedIPs ?? []).contains { $0.ipAddress == ip } })
            else { continue }
            var body: JSONObject = [:]
            if wanted.portSecurityEnabled == false {
                if port.portSecurityEnabled != false {
                    body["security_groups"] = .array([])
                    body["port_security_enabled"] = false
                }
            } else {
                if let groups = wanted.securityGroups, groups.map(\.name).sorted() != serverGroups {
                    var ids: [String] = []
                    for g in groups { ids.append(try await resolver.resolve(.securityGroup, g)) }
                    if Set(ids) != Set(port.securityGroups ?? []) { body["security_groups"] = .array(ids.map(JSONValue.string)) }
                }
                let wantedPairs = Set(wanted.allowedAddressPairs.compactMap { $0["ip_address"]?.stringValue })
                if !wantedPairs.isEmpty, wantedPairs != Set((port.allowedAddressPairs ?? []).map(\.ipAddress)) {
                    body["allowed_address_pairs"] = .array(wanted.allowedAddressPairs)
                }
            }
            if !body.isEmpty { _ = try await dst.update(Neutron.ports, port.id, body) }
        }
    }

    func serverBody(_ bootVolume: String?) async throws -> JSONObject {
        var body: JSONObject = ["name": .string(plan.name), "flavorRef": .string(try await resolver.resolve(.flavor, plan.flavor))]
        if let k = plan.keyName { body["key_name"] = .string(k) }
        if let az = plan.availabilityZone { body["availability_zone"] = .string(az) }
        if !plan.metadata.isEmpty { body["metadata"] = .object(plan.metadata.mapValues(JSONValue.string)) }
        if let d = plan.description { body["description"] = .string(d) }
        if !plan.tags.isEmpty { body["tags"] = .array(plan.tags.map(JSONValue.string)) }
        if plan.configDrive { body["config_drive"] = true }
        if let u = plan.userData { body["user_data"] = .string(u) }
        var networks: [JSONValue] = []
        switch plan.portMode {
        case .neutron:
            for i in plan.ports.indices {
                guard let p = try recorded("dst-port:\(i)") else { continue }
                networks.append(["port": .string(p.resourceID)])
            }
        case .nova:
            for port in plan.ports {
                var n: JSONObject = ["uuid": .string(try await resolver.resolve(.network, port.network))]
                if let ip = port.fixedIPs.first?.ip { n["fixed_ip"] = .string(ip) }
                networks.append(.object(n))
            }
            var groups: [JSONValue] = []
            for g in plan.securityGroups { groups.append(["name": .string(g.name)]) }
            if !groups.isEmpty { body["security_groups"] = .array(groups) }
        }
        body["networks"] = networks.isEmpty ? "none" : .array(networks)
        var bdm: [JSONValue] = []
        if let bootVolume {
            bdm.append(["uuid": .string(bootVolume), "source_type": "volume", "destination_type": "volume", "boot_index": 0,
                        "delete_on_termination": true])
        } else if let image = plan.image {
            let imageID = try await resolver.resolve(.image, image)
            body["imageRef"] = .string(imageID)
            bdm.append(["uuid": .string(imageID), "source_type": "image", "destination_type": "local", "boot_index": 0,
                        "delete_on_termination": true])
        }
        for (i, v) in plan.volumes.enumerated() where !v.isBoot {
            bdm.append(["uuid": .string(try destinationVolume(i)), "source_type": "volume", "destination_type": "volume",
                        "boot_index": -1, "delete_on_termination": false])
        }
        body["block_device_mapping_v2"] = .array(bdm)
        return body
    }

    func floatingIPs() async throws {
        guard plan.floatingIPMode != .skip, !plan.floatingIPs.isEmpty else { return }
        guard let serverID = try ledger.workload(id)?.destinationID else { return }
        // The destination ports, with their fixed IPs (Nova's may take a moment to show).
        var ports: [OpenStack.Port] = []
        for _ in 0..<10 {
            ports = try await dst.list(Neutron.ports, query: [QueryItem("device_id", serverID)]).collect()
            if !ports.isEmpty { break }
            try await Task.sleep(for: .seconds(1))
        }
        for (i, f) in plan.floatingIPs.enumerated() {
            let role = "dst-fip:\(i)"
            if try recorded(role) != nil { continue }
            let holding = ports.first { p in (p.fixedIPs ?? []).contains { $0.ipAddress == f.fixedIP } }
            guard let port = holding ?? ports.first else {
                throw OpenStackError(kind: .notFound, service: ServiceType.network, message: "no destination port for floating IP \(f.address ?? "?")")
            }
            if plan.floatingIPMode == .existing || plan.floatingIPMode == .auto, let addr = f.address {
                let found = try await dst.list(Neutron.floatingIPs, query: [QueryItem("floating_ip_address", addr)]).collect()
                if let fip = found.first, fip.portID == nil {
                    try ledger.record(id, cloud: .dst, kind: "fip-association", role: role, id: fip.id)
                    _ = try await dst.update(Neutron.floatingIPs, fip.id, ["port_id": .string(port.id)])
                    continue
                }
                if plan.floatingIPMode == .existing {
                    let why = found.isEmpty ? "does not exist in the destination" : "is attached to port \(found[0].portID ?? "?")"
                    throw OpenStackError(kind: .notFound, service: ServiceType.network, message: "floating IP \(addr) \(why) (floating_ip_mode existing)")
                }
            }
            guard let net = f.network else {
                throw OpenStackError(kind: .notFound, service: ServiceType.network, message: "floating IP \(f.address ?? "?") has no network")
            }
            let netID = try await resolver.resolve(.network, net)
            _ = try await ensure(role, .dst, "floatingip", adopt: {
                // A floating IP an interrupted run created: on our port, for this fixed IP.
                try await dst.list(Neutron.floatingIPs, query: [QueryItem("port_id", port.id)]).collect()
                    .first { f.fixedIP == nil || $0.fixedIPAddress == f.fixedIP }?.id
            }) {
                var body: JSONObject = ["floating_network_id": .string(netID), "port_id": .string(port.id)]
                if let fixed = f.fixedIP { body["fixed_ip_address"] = .string(fixed) }
                if let d = f.description, !d.isEmpty { body["description"] = .string(d) }
                return try await dst.create(Neutron.floatingIPs, body).id
            }
        }
    }

    /// Success: temporaries deleted, data volumes back on the source VM (which stays stopped),
    /// everything in the destination kept.
    ///
    /// The workload is in the destination by now: what cannot be cleaned up is not a reason to
    /// undo the migration. It stays in the ledger (`report` lists it) and the next run tries again.
    func cleanupSource() async throws {
        for r in try ledger.resources(id, state: .created) where r.cloud == CloudSide.dst.rawValue {
            try ledger.setState(r, .kept)
        }
        var problems: [String] = []
        await undoSource(&problems, restart: false)
        for p in problems { try? ledger.log(id, step: MigrationStep.cleanup.rawValue, p) }
    }

    /// Source resources the migration still has to clean up (a cleanup that failed).
    func leftovers() -> [Ledger.Resource] {
        ((try? ledger.resources(id, state: .created)) ?? []).filter { $0.cloud == CloudSide.src.rawValue }
    }

    // MARK: report

    func summary() -> String {
        let copies = (try? ledger.copies(id)) ?? []
        let left = leftovers()
        let server = (try? ledger.workload(id)?.destinationID) ?? nil
        func gib(_ b: Int64) -> String { String(format: "%.2f GiB", Double(b) / Double(1 << 30)) }
        var s = "migrated to server \(server ?? "?")"
        if let d = (try? ledger.workload(id)?.downtimeSeconds) ?? nil { s += String(format: ", downtime %.1f s", d) }
        if !copies.isEmpty {
            let size = copies.reduce(Int64(0)) { $0 + $1.size }
            let wire = copies.reduce(Int64(0)) { $0 + $1.bytesOnWire }
            let zero = copies.reduce(Int64(0)) { $0 + $1.bytesZero }
            s += ": \(copies.count) volume(s), \(gib(size)) verified (\(gib(zero)) zero, \(gib(wire)) on the wire)"
        }
        if !left.isEmpty {
            s += "; source cleanup incomplete (\(left.map { "\($0.kind) \($0.resourceID)" }.joined(separator: ", "))): "
                + "the next run tries again, `os-migrate report` lists them"
        }
        return s
    }
}
