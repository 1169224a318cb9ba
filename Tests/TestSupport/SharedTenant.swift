import Foundation

/// One lab tenant shared by the parameterized cases of a suite: created on first use,
/// purged when the last user is done.
public actor SharedTenant {
    let tag: String
    private var tenant: Task<LabTenant, any Error>?
    private var users = 0

    public init(tag: String) { self.tag = tag }

    public func run<T: Sendable>(_ body: @Sendable (LabTenant) async throws -> T) async throws -> T {
        users += 1
        if tenant == nil {
            let tag = self.tag
            tenant = Task { try await LabTenant.create(tag) }
        }
        let t: LabTenant
        do { t = try await tenant!.value } catch {
            users -= 1
            throw error
        }
        // The last user purges the tenant before returning (a detached task could outlive the
        // test process and leave the project behind).
        do {
            let result = try await body(t)
            await release()
            return result
        } catch {
            await release()
            throw error
        }
    }

    private func release() async {
        users -= 1
        if users == 0, let t = tenant {
            tenant = nil
            if let tenant = try? await t.value { try? await tenant.purge() }
        }
    }
}
