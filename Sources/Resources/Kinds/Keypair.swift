import OpenStack

/// Nova keypairs (`openstack.compute.Keypair`): public keys only, private keys never exist on the
/// cloud. Two files hold them: `keypairs.yml`, the authenticated user's own keys (`user_ref` is
/// `%auth%`, imported for the importing user), and `users_keypairs.yml` (admin), other users' keys
/// by user reference, imported for that user (Nova microversion 2.10+). Keypairs cannot be
/// updated: an existing key with the same name and the same public key is `ok`, one with another
/// public key is a conflict, reported `failed`.
public enum KeypairKind: ResourceKind {
    public static let name = "keypairs"
    public static let fileName = "keypairs.yml"
    public static let typeName = "openstack.compute.Keypair"
    public static let requiredParams = ["name", "public_key"]
    public static let filterVariable = "os_migrate_keypairs_filter"

    public static func references(_ record: ResourceRecord) -> [FieldReference] { Keypairs.references(record) }
    public static func validate(_ record: ResourceRecord) -> [String] { Keypairs.validate(record) }
    public static func importIdentity(_ record: ResourceRecord) -> String? { Keypairs.importIdentity(record) }
    public static func exportIdentity(_ record: ResourceRecord) -> String? { Keypairs.exportIdentity(record) }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        try await Keypairs.export(ctx, userID: nil)
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        try await Keypairs.plan(record, ctx)
    }
}

/// Other users' keypairs (`users_keypairs.yml`; admin).
public enum UsersKeypairKind: ResourceKind {
    public static let name = "users-keypairs"
    public static let fileName = "users_keypairs.yml"
    public static let typeName = "openstack.compute.Keypair"
    public static let dependencies = ["users"]
    public static let requiredParams = ["name", "public_key", "user_ref"]
    /// As the reference tool: the users filter selects whose keys (`os_migrate_users_filter`).
    public static let filterVariable = "os_migrate_users_filter"
    public static let filterPath = "user_ref.name"
    public static let adminOnly = true

    public static func label(_ record: ResourceRecord) -> String {
        "\(record.value(at: "user_ref.name")?.stringValue ?? "?"): \(record.name ?? "?")"
    }

    public static func references(_ record: ResourceRecord) -> [FieldReference] { Keypairs.references(record) }
    public static func validate(_ record: ResourceRecord) -> [String] { Keypairs.validate(record) }
    public static func importIdentity(_ record: ResourceRecord) -> String? { Keypairs.importIdentity(record) }
    public static func exportIdentity(_ record: ResourceRecord) -> String? { Keypairs.exportIdentity(record) }

    public static func export(_ ctx: ExportContext) async throws -> [ResourceRecord] {
        let users = try await ctx.session.list(JSONValue.self, APIRequest(ServiceType.identity, .GET, "/users"), key: "users")
            .collect().compactMap { $0["id"]?.stringValue }
        return try await boundedMap(users, limit: 8) { user in
            do { return try await Keypairs.export(ctx, userID: user) } catch let e as OpenStackError where e.isNotFound {
                return [] // the user was deleted since the listing
            }
        }.flatMap { $0 }
    }

    public static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        try await Keypairs.plan(record, ctx)
    }
}

/// What the two keypair kinds share.
enum Keypairs {
    static func references(_ record: ResourceRecord) -> [FieldReference] {
        guard let r = Reference(record.params["user_ref"]) else { return [] }
        return [FieldReference(field: "params.user_ref", type: .user, ref: r)]
    }

    static func validate(_ record: ResourceRecord) -> [String] {
        var out: [String] = []
        if let k = record.params["public_key"] {
            if let s = k.stringValue {
                if s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { out.append("params.public_key is empty") }
                if s.contains("PRIVATE KEY") { out.append("params.public_key holds a private key: only public keys may be in data files") }
            } else if !k.isNull {
                out.append("params.public_key is not a string")
            }
        }
        if let t = record.params["type"]?.stringValue, !["ssh", "x509"].contains(t) {
            out.append("params.type '\(t)' is not ssh or x509")
        }
        return out
    }

    /// The reference tool's: type, name, and whose key it is.
    static func importIdentity(_ record: ResourceRecord) -> String? {
        guard let n = record.name else { return nil }
        let u = Reference(record.params["user_ref"])
        return "\(record.type):\(n):\(u?.name ?? ""):\(u?.domainName ?? "")"
    }

    static func exportIdentity(_ record: ResourceRecord) -> String? {
        guard let id = record.id else { return nil }
        return "\(record.type):\(id):\((record.params["user_ref"] ?? .null).jsonString())"
    }

    /// The keys of `userID` (nil: the authenticated user's own).
    static func export(_ ctx: ExportContext, userID: String?) async throws -> [ResourceRecord] {
        let keys = try await ctx.session.keypairs(userID: userID)
        return try await boundedMap(keys, limit: 8) { k in
            try await KindSupport.unlessGone("keypair \(k.name) of user \(userID ?? "(self)")", ctx.logger) { try await record(k, ctx, userID: userID) }
        }.compactMap { $0 }
    }

    static func record(_ k: Keypair, _ ctx: ExportContext, userID: String?) async throws -> ResourceRecord {
        do {
            // The list lacks user, id and dates: ask for each key.
            let detail = try await ctx.session.json(
                APIRequest(ServiceType.compute, .GET, "/os-keypairs/" + APIPath.escape(k.name),
                           query: userID.map { [QueryItem("user_id", $0)] } ?? []), key: "keypair")
            let owner = detail["user_id"]?.stringValue ?? userID
            return ResourceRecord(type: KeypairKind.typeName, params: [
                "name": .string(k.name), "public_key": .string(k.publicKey), "type": k.type.map(JSONValue.string) ?? .null,
                "user_ref": try await ctx.refs.userRef(id: owner),
            ], info: [
                "created_at": detail["created_at"] ?? .null, "fingerprint": detail["fingerprint"] ?? .null, "id": .string(k.name),
                "is_deleted": detail["deleted"] ?? .null, "user_id": owner.map(JSONValue.string) ?? .null,
            ])
        } catch let e as OpenStackError where e.isNotFound {
            // Deleted since the listing.
            throw ReferenceError("keypair \(k.name) is gone: \(e.description)")
        }
    }

    /// Keys compare by type and data; the trailing comment may differ.
    static func sameKey(_ a: String, _ b: String) -> Bool {
        let x = a.split(whereSeparator: \.isWhitespace), y = b.split(whereSeparator: \.isWhitespace)
        if x.count >= 2, y.count >= 2, ["ssh-", "ecdsa-", "sk-"].contains(where: { x[0].hasPrefix($0) }) {
            return x[0] == y[0] && x[1] == y[1]
        }
        return a.trimmingCharacters(in: .whitespacesAndNewlines) == b.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func plan(_ record: ResourceRecord, _ ctx: ImportContext) async throws -> ImportStep {
        guard let name = record.name, let key = record.params["public_key"]?.stringValue else {
            return .fail(reason: "params.name and params.public_key are required")
        }
        // `%auth%` (or no user): the importing user's own key, created without user_id.
        var userID: String? = nil
        if let u = Reference(record.params["user_ref"]), u.name != Reference.auth {
            userID = try await ctx.resolve(.user, record, "user_ref")
        }
        let type = record.params["type"]?.stringValue
        let owner = userID
        let create: ImportStep = .create(detail: owner == nil ? "" : "for user \(record.value(at: "user_ref.name")?.stringValue ?? "?")") {
            do {
                _ = try await ctx.session.createKeypair(name: name, publicKey: key, type: type, userID: owner)
            } catch let e as OpenStackError where e.isBadRequest && type != nil {
                // Before microversion 2.2 there is no type.
                _ = try await ctx.session.createKeypair(name: name, publicKey: key, type: nil, userID: owner)
            }
            return name
        }
        if KindSupport.isPlaceholder(owner) { return create }
        guard let existing = try await ctx.session.keypair(name, userID: owner) else { return create }
        if sameKey(existing.publicKey, key) { return .ok(id: name) }
        return .fail(reason: "conflict: the destination already has a keypair '\(name)'\(owner == nil ? "" : " for this user") with a different public key (fingerprint \(existing.fingerprint ?? "?")); delete or rename one of them")
    }
}
