/// Every resource kind, in dependency order. A new kind is one file and one line here.
public enum ResourceRegistry {
    public static let kinds: [any ResourceKind.Type] = [
        ProjectKind.self,
        UserKind.self,
        RoleAssignmentKind.self,
        FlavorKind.self,
        VolumeTypeKind.self,
        UsersKeypairKind.self,
        KeypairKind.self,
        NetworkKind.self,
        SubnetKind.self,
        RouterKind.self,
        RouterInterfaceKind.self,
        SecurityGroupKind.self,
        SecurityGroupRuleKind.self,
        ImageKind.self,
        DetachedVolumeKind.self,
        WorkloadKind.self,
    ]

    public static func kind(named name: String) -> (any ResourceKind.Type)? {
        let n = name.replacingOccurrences(of: "_", with: "-").lowercased()
        return kinds.first { $0.name == n || $0.name == n + "s" }
    }

    public static func kind(forType type: String) -> (any ResourceKind.Type)? {
        kinds.first { $0.typeName == type }
    }

    public static func kind(forFile file: String) -> (any ResourceKind.Type)? {
        kinds.first { $0.fileName == file }
    }
}
