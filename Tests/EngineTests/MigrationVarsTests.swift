import Engine
import Foundation
import OpenStack
import Testing
import TestSupport

/// The Ansible os-migrate vars file and the precedence flags > vars file > environment.
/// Pure: files in a temp dir, injected environment; no network. (Here rather than in
/// OpenStackTests because MigrationVars and RunConfiguration live in Engine.)
@Suite struct MigrationVarsTests {
    static let varsText = """
        os_migrate_data_dir: /var/tmp/osm-data
        keystone: http://127.0.0.1:5000
        os_migrate_src_auth:
          auth_url: "{{ keystone }}/v3"
          username: src-user
          password: "{{ lookup('env', 'OSM_SRC_PW') }}"
          project_name: src
          user_domain_name: Default
          project_domain_name: Default
        os_migrate_src_region_name: RegionOne
        os_migrate_src_validate_certs: false
        os_migrate_src_ca_cert: /etc/ssl/src-ca.pem
        os_migrate_dst_auth: "{{ dst_auth }}"
        dst_auth:
          auth_url: https://dst.example:5000/v3
          application_credential_id: ac-1
          application_credential_secret: "{{ lookup(\\"env\\", \\"OSM_DST_SECRET\\") }}"
        os_migrate_dst_auth_type: v3applicationcredential
        os_migrate_dst_interface: internal
        os_migrate_networks_filter:
          - regex: '^prod-'
        os_migrate_conversion_host_name: "conv-{{ os_migrate_src_region_name }}"
        """

    @Test func readsBothSidesAndTemplates() throws {
        try withTempDir("vars") { dir in
            let ca = try dir.write("src-ca.pem", "not checked here\n")
            let path = try dir.write("os-migrate-vars.yml", Self.varsText.replacingOccurrences(of: "/etc/ssl/src-ca.pem", with: ca))
            let vars = try MigrationVars(path: path, environment: ["OSM_SRC_PW": "src-pass", "OSM_DST_SECRET": "dst-secret"])
            #expect(vars.dataDir == "/var/tmp/osm-data")
            #expect(vars.string("os_migrate_conversion_host_name") == "conv-RegionOne")
            #expect(vars["os_migrate_networks_filter"] == [["regex": "^prod-"]])

            let src = try #require(try vars.cloudProfile(.src))
            #expect(src.name == "src")
            #expect(src.origin == "vars file \(path)")
            #expect(src.authMethod == .password)
            #expect(src.auth == ["auth_url": "http://127.0.0.1:5000/v3", "username": "src-user", "password": "src-pass",
                                 "project_name": "src", "user_domain_name": "Default", "project_domain_name": "Default"])
            #expect(src.regionName == "RegionOne")
            #expect(src.verifyTLS == false)
            #expect(src.caCertFile == ca)

            let dst = try #require(try vars.cloudProfile(.dst))
            #expect(dst.name == "dst")
            #expect(dst.authMethod == .applicationCredential)
            #expect(dst.auth == ["auth_url": "https://dst.example:5000/v3", "application_credential_id": "ac-1",
                                 "application_credential_secret": "dst-secret"])
            #expect(dst.interface == "internal")
            #expect(dst.verifyTLS == true)
        }
    }

    @Test func missingPasswordNamesTheVarsKey() throws {
        try withTempDir("vars") { dir in
            let path = try dir.write("v.yml", """
                os_migrate_src_auth:
                  auth_url: http://127.0.0.1:5000/v3
                  username: u
                  password: "{{ lookup('env', 'UNSET_VARIABLE_FOR_TEST') }}"
                  project_name: p
                """)
            let vars = try MigrationVars(path: path, environment: [:])
            #expect(errorText { _ = try vars.cloudProfile(.src) } == "vars file \(path): os_migrate_src_auth.password is missing")
            #expect(try vars.cloudProfile(.dst) == nil)
        }
    }

    @Test func missingUsernameNamesTheVarsKeys() throws {
        try withTempDir("vars") { dir in
            let path = try dir.write("v.yml", """
                os_migrate_dst_auth:
                  auth_url: http://127.0.0.1:5000/v3
                  password: pw
                  project_name: p
                """)
            let vars = try MigrationVars(path: path, environment: [:])
            #expect(errorText { _ = try vars.cloudProfile(.dst) }
                == "vars file \(path): os_migrate_dst_auth.username (or os_migrate_dst_auth.user_id) is missing")
        }
    }

    @Test func undefinedVariable() throws {
        try withTempDir("vars") { dir in
            let path = try dir.write("v.yml", "os_migrate_src_auth:\n  auth_url: \"{{ nowhere }}/v3\"\n")
            #expect(errorText { _ = try MigrationVars(path: path, environment: [:]) } == "vars file \(path): undefined variable 'nowhere'")
        }
    }

    @Test func unsupportedTemplating() throws {
        try withTempDir("vars") { dir in
            let path = try dir.write("v.yml", """
                os_migrate_src_auth:
                  password: "{{ vault_pw | default('x') }}"
                """)
            #expect(errorText { _ = try MigrationVars(path: path, environment: [:]) }
                == "vars file \(path): os_migrate_src_auth.password: cannot evaluate '{{ vault_pw | default('x') }}' "
                + "(only {{ variable }} and {{ lookup('env', 'NAME') }} are supported)")
        }
    }

    @Test func selfReferenceAndOddFiles() throws {
        try withTempDir("vars") { dir in
            let loop = try dir.write("loop.yml", "a: \"{{ b }}\"\nb: \"{{ a }}\"\n")
            #expect(errorText { _ = try MigrationVars(path: loop, environment: [:]) } == "vars file \(loop): variable 'a' refers to itself")
            #expect(errorText { _ = try MigrationVars(path: dir.path + "/none.yml", environment: [:]) }
                == "vars file \(dir.path)/none.yml: file not found")
            let list = try dir.write("list.yml", "- a\n- b\n")
            #expect(errorText { _ = try MigrationVars(path: list, environment: [:]) } == "vars file \(list): file is empty or not a mapping")
            let notMap = try dir.write("nm.yml", "os_migrate_src_auth: just-a-string\n")
            #expect(errorText { _ = try MigrationVars(path: notMap, environment: [:]).cloudProfile(.src) }
                == "vars file \(notMap): os_migrate_src_auth is not a mapping")
            let badType = try dir.write("bt.yml", "os_migrate_src_auth: {auth_url: 'http://k/v3'}\nos_migrate_src_auth_type: v3oidc\n")
            #expect(errorText { _ = try MigrationVars(path: badType, environment: [:]).cloudProfile(.src) }
                == "vars file \(badType): os_migrate_src_auth_type 'v3oidc' is not supported (use password, v3applicationcredential or token)")
        }
    }

    // MARK: precedence

    func cloudsYaml(_ dir: TempDir) throws -> String {
        try dir.write("clouds.yaml", """
            clouds:
              flagged:
                auth: {auth_url: 'https://flag/v3', username: f, password: p, project_name: fp}
              fromenv:
                auth: {auth_url: 'https://env/v3', username: e, password: p, project_name: ep}
            """)
    }

    @Test func flagsWinOverTheVarsFile() throws {
        try withTempDir("vars") { dir in
            let clouds = try cloudsYaml(dir)
            let vars = try dir.write("v.yml", Self.varsText.replacingOccurrences(of: "os_migrate_src_ca_cert: /etc/ssl/src-ca.pem\n", with: ""))
            let loader = CloudConfigLoader(environment: ["OS_CLIENT_CONFIG_FILE": clouds, "OSM_SRC_PW": "x", "OSM_DST_SECRET": "y"],
                                           currentDirectory: dir.path, homeDirectory: dir.path)
            let c = try RunConfiguration.resolve(srcCloud: "flagged", dstCloud: nil, varsPath: vars, dataDir: "/flag/data", loader: loader)
            #expect(c.src?.name == "flagged")
            #expect(c.src?.origin == "clouds.yaml \(clouds)")
            #expect(c.dst?.name == "dst")
            #expect(c.dst?.origin == "vars file \(vars)")
            #expect(c.dataDir == "/flag/data")
            #expect(c.vars?.path == vars)

            let fromVars = try RunConfiguration.resolve(srcCloud: nil, dstCloud: "flagged", varsPath: vars, dataDir: nil, loader: loader)
            #expect(fromVars.src?.name == "src")
            #expect(fromVars.src?.auth["password"] == "x")  // lookup('env') reads the loader's environment
            #expect(fromVars.dst?.name == "flagged")
            #expect(fromVars.dataDir == "/var/tmp/osm-data")
        }
    }

    @Test func theVarsFileWinsOverTheEnvironment() throws {
        try withTempDir("vars") { dir in
            let clouds = try cloudsYaml(dir)
            let vars = try dir.write("v.yml", Self.varsText.replacingOccurrences(of: "os_migrate_src_ca_cert: /etc/ssl/src-ca.pem\n", with: ""))
            let loader = CloudConfigLoader(environment: ["OS_CLIENT_CONFIG_FILE": clouds, "OS_CLOUD": "fromenv",
                                                         "OS_AUTH_URL": "https://env/v3", "OSM_SRC_PW": "x", "OSM_DST_SECRET": "y"],
                                           currentDirectory: dir.path, homeDirectory: dir.path)
            let c = try RunConfiguration.resolve(srcCloud: nil, dstCloud: nil, varsPath: vars, dataDir: nil, loader: loader)
            #expect(c.src?.name == "src")
            #expect(c.dst?.name == "dst")
            // Without flags and vars file nothing is chosen here: `check` falls back to OS_CLOUD itself,
            // and commands that need a side say how to give it.
            let none = try RunConfiguration.resolve(srcCloud: nil, dstCloud: nil, varsPath: nil, dataDir: nil, loader: loader)
            #expect(none.src == nil)
            #expect(none.dataDir == "./os-migrate-data")
            #expect(errorText { _ = try none.requireSource() }
                == "no source cloud: pass --src-cloud NAME (a clouds.yaml entry) or --vars FILE with os_migrate_src_auth")
            #expect(errorText { _ = try none.requireDestination() }
                == "no destination cloud: pass --dst-cloud NAME (a clouds.yaml entry) or --vars FILE with os_migrate_dst_auth")
            #expect(loader.defaultCloudName() == "fromenv")
        }
    }
}
