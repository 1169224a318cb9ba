import OpenStack

/// Neutron security groups (`security_groups.yml`, `openstack.network.SecurityGroup`).
/// A created group loses Neutron's automatic egress rules: the rules file is the only truth.
/// When the rules are imported in the same run, the rules kind removes just the rules the file
/// does not list, in created and existing groups alike (instead of deleting and re-creating
/// identical ones); see `SecurityGroupRuleKind.finish`.
/// The destination's own `default` group is matched by name, never created twice.
public enum SecurityGroupKind: NeutronKind {
    public static let name = "security-groups"
    public static let fileName = "security_groups.yml"
    public static let typeName = "openstack.network.SecurityGroup"
    public static let refType: RefType? = .securityGroup
    public static let filterVariable = "os_migrate_security_groups_filter"
    public static let collection = Neutron.securityGroups

    public static let fieldMap = FieldMap([
        Field("description"),
        Field("name"),
        .tags,
    ], info: [
        InfoField("created_at"), InfoField("id"), InfoField("project_id"), InfoField("revision_number"), InfoField("updated_at"),
    ])

    public static func afterCreate(id: String, _ record: ResourceRecord, _ ctx: ImportContext) async throws {
        if ctx.kinds.contains(SecurityGroupRuleKind.name) { return }
        let rules = try await ctx.session.list(Neutron.securityGroupRules, query: [QueryItem("security_group_id", id)]).collect()
        for rule in rules { try await ctx.session.delete(Neutron.securityGroupRules, rule.id) }
    }
}
