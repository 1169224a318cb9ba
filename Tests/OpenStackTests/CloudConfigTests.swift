import Foundation
import Testing
import TestSupport

@testable import OpenStack

/// clouds.yaml, secure.yaml, OS_* variables and OS_CLOUD, through the loader's injectable
/// environment, working directory and home directory.
@Suite struct CloudConfigTests {
    static let fullCloud = """
        clouds:
          prod:
            auth:
              auth_url: https://keystone.example:5000/v3
              username: alice
              password: s3cret
              project_name: tenant-a
              user_domain_name: Users
              project_domain_id: default
            region_name: RegionTwo
            interface: internal
            identity_api_version: 3
            verify: false
            compute_api_version: "2.60"
            volume_api_version: "3.50"
            network_endpoint_override: https://neutron.example/v2.0
            block_storage_endpoint_override: https://cinder.example/v3/abc
          other:
            auth:
              auth_url: https://other.example/v3
              username: bob
              password: pw
              project_id: p-1
        """

    func loader(_ dir: TempDir, env: [String: String] = [:], cwd: String? = nil, home: String? = nil) -> CloudConfigLoader {
        CloudConfigLoader(environment: env, currentDirectory: cwd ?? dir.path + "/cwd", homeDirectory: home ?? dir.path + "/home")
    }

    @Test func loadsEveryFieldOfAnEntry() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", Self.fullCloud)
            let p = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "prod")
            #expect(p.name == "prod")
            #expect(p.origin == "clouds.yaml \(path)")
            #expect(p.authMethod == .password)
            #expect(p.auth == ["auth_url": "https://keystone.example:5000/v3", "username": "alice", "password": "s3cret",
                               "project_name": "tenant-a", "user_domain_name": "Users", "project_domain_id": "default"])
            #expect(p.regionName == "RegionTwo")
            #expect(p.interface == "internal")
            #expect(p.verifyTLS == false)
            #expect(p.caCertFile == nil)
            #expect(p.endpointOverrides == ["network": "https://neutron.example/v2.0", "block-storage": "https://cinder.example/v3/abc"])
            #expect(p.apiVersions == ["compute": "2.60", "block-storage": "3.50"])
            #expect(p.authURL == "https://keystone.example:5000/v3")
            try p.validate()
        }
    }

    @Test func endpointTypeInTheOldFormIsTheInterface() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  old:
                    auth: {auth_url: https://k.example/v3, username: u, password: p, project_name: t}
                    endpoint_type: internalURL
                """)
            #expect(try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "old").interface == "internal")
        }
    }

    @Test func verifyWithAPathIsTheCABundle() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  c:
                    auth: {auth_url: "https://k/v3", username: u, password: p, project_name: x}
                    verify: /etc/ssl/certs/ca-certificates.crt
                  d:
                    auth: {auth_url: "https://k/v3", username: u, password: p, project_name: x}
                    cacert: /tmp/ca.pem
                    cert: /tmp/client.pem
                    key: /tmp/client.key
                    insecure: true
                """)
            let l = loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path])
            let c = try l.load(cloud: "c")
            #expect(c.verifyTLS == true)
            #expect(c.caCertFile == "/etc/ssl/certs/ca-certificates.crt")
            let d = try l.load(cloud: "d")
            #expect(d.verifyTLS == false)
            #expect(d.caCertFile == "/tmp/ca.pem")
            #expect(d.clientCertFile == "/tmp/client.pem")
            #expect(d.clientKeyFile == "/tmp/client.key")
            #expect(errorText { try d.validate() } == "clouds.yaml \(path): cloud 'd': cacert file '/tmp/ca.pem' is not readable")
        }
    }

    @Test func secureYamlIsMergedIntoTheEntry() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  prod:
                    auth:
                      auth_url: https://keystone.example/v3
                      username: alice
                      project_name: tenant-a
                    region_name: RegionOne
                """)
            let secure = try dir.write("cwd/secure.yaml", """
                clouds:
                  prod:
                    auth:
                      password: from-secure
                    region_name: RegionSecure
                  unrelated:
                    auth: {password: x}
                """)
            let p = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "prod")
            #expect(p.auth["password"] == "from-secure")
            #expect(p.auth["username"] == "alice")
            #expect(p.regionName == "RegionSecure")
            #expect(p.origin == "clouds.yaml \(path) + \(secure)")
            try p.validate()
        }
    }

    @Test func osClientSecureFileWinsOverTheSearchPath() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", "clouds:\n  a:\n    auth: {auth_url: 'https://k/v3', username: u, project_name: p}\n")
            try dir.write("cwd/secure.yaml", "clouds:\n  a:\n    auth: {password: from-cwd}\n")
            let explicit = try dir.write("elsewhere/s.yaml", "clouds:\n  a:\n    auth: {password: from-env}\n")
            let p = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path, "OS_CLIENT_SECURE_FILE": explicit]).load(cloud: "a")
            #expect(p.auth["password"] == "from-env")
        }
    }

    @Test func searchOrderIsEnvThenCwdThenHome() throws {
        try withTempDir { dir in
            func cloudsFile(_ user: String) -> String {
                "clouds:\n  a:\n    auth: {auth_url: 'https://k/v3', username: \(user), password: p, project_name: x}\n"
            }
            let envFile = try dir.write("env/clouds.yaml", cloudsFile("from-env"))
            let cwdFile = try dir.write("cwd/clouds.yaml", cloudsFile("from-cwd"))
            let homeFile = try dir.write("home/.config/openstack/clouds.yaml", cloudsFile("from-home"))
            #expect(try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": envFile]).load(cloud: "a").auth["username"] == "from-env")
            #expect(try loader(dir).load(cloud: "a").auth["username"] == "from-cwd")
            try FileManager.default.removeItem(atPath: cwdFile)
            #expect(try loader(dir).load(cloud: "a").auth["username"] == "from-home")
            #expect(try loader(dir).load(cloud: "a").origin == "clouds.yaml \(homeFile)")
            #expect(loader(dir, env: ["OS_CLIENT_CONFIG_FILE": envFile]).cloudsFileCandidates == [
                envFile, dir.path + "/cwd/clouds.yaml", dir.path + "/home/.config/openstack/clouds.yaml", "/etc/openstack/clouds.yaml",
            ])
        }
    }

    // MARK: OS_* variables and OS_CLOUD

    @Test func environmentVariablesFormTheEnvvarsCloud() throws {
        try withTempDir { dir in
            let env = [
                "OS_AUTH_URL": "https://keystone.example:5000", "OS_USERNAME": "carol", "OS_PASSWORD": "pw",
                "OS_PROJECT_NAME": "proj", "OS_USER_DOMAIN_NAME": "Default", "OS_PROJECT_DOMAIN_ID": "default",
                "OS_REGION_NAME": "RegionOne", "OS_INTERFACE": "internal", "OS_CACERT": "/etc/ca.pem",
                "OS_INSECURE": "true", "OS_COMPUTE_API_VERSION": "2.70", "OS_VOLUME_API_VERSION": "3.40",
            ]
            let l = loader(dir, env: env)
            #expect(l.defaultCloudName() == "envvars")
            let p = try l.load(cloud: "envvars")
            #expect(p.name == "envvars")
            #expect(p.origin == "OS_* environment variables")
            #expect(p.authMethod == .password)
            #expect(p.auth == ["auth_url": "https://keystone.example:5000", "username": "carol", "password": "pw",
                               "project_name": "proj", "user_domain_name": "Default", "project_domain_id": "default"])
            #expect(p.regionName == "RegionOne")
            #expect(p.interface == "internal")
            #expect(p.caCertFile == "/etc/ca.pem")
            #expect(p.verifyTLS == false)
            #expect(p.apiVersions == ["compute": "2.70", "block-storage": "3.40"])
        }
    }

    @Test func environmentApplicationCredentialAndLegacyNames() throws {
        try withTempDir { dir in
            let p = try loader(dir, env: [
                "OS_AUTH_URL": "https://k/v3", "OS_AUTH_TYPE": "v3applicationcredential",
                "OS_APPLICATION_CREDENTIAL_ID": "ac-1", "OS_APPLICATION_CREDENTIAL_SECRET": "shh",
                "OS_ENDPOINT_TYPE": "internalURL", "OS_TENANT_NAME": "legacy",
            ]).load(cloud: "envvars")
            #expect(p.authMethod == .applicationCredential)
            #expect(p.auth == ["auth_url": "https://k/v3", "application_credential_id": "ac-1",
                               "application_credential_secret": "shh", "project_name": "legacy"])
            #expect(p.interface == "internal")
            #expect(p.verifyTLS == true)
            try p.validate()
        }
    }

    /// `openstack --os-cloud x` with OS_PASSWORD exported: Horizon's clouds.yaml has no password.
    @Test func osVariablesApplyOverANamedCloud() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  openstack:
                    auth:
                      auth_url: https://keystone.example:5000
                      username: "alice"
                      project_id: 0123abcd
                      project_name: "tenant-a"
                      user_domain_name: "Default"
                    region_name: "RegionOne"
                    interface: "public"
                    identity_api_version: 3
                """)
            // Without the variable the entry lacks a password.
            let bare = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "openstack")
            #expect(errorText { try bare.validate() } == "clouds.yaml \(path): cloud 'openstack': auth.password is missing")

            let p = try loader(dir, env: [
                "OS_CLIENT_CONFIG_FILE": path, "OS_PASSWORD": "from-env", "OS_REGION_NAME": "RegionTwo",
                "OS_INTERFACE": "internal", "OS_USERNAME": "bob", "OS_CACERT": "/etc/ca.pem", "OS_INSECURE": "true",
                "OS_COMPUTE_API_VERSION": "2.70", "OS_PROJECT_DOMAIN_ID": "default", "OS_PASSWORD_EXTRA": "ignored",
                "OS_AUTH_URL": "https://other-cloud.example:5000", "OS_PROJECT_NAME": "other-tenant",
            ]).load(cloud: "openstack")
            #expect(p.name == "openstack")
            // Filled in where the entry is silent; never replacing what it sets (an openrc sourced
            // for one cloud must not redirect the other).
            #expect(p.auth == ["auth_url": "https://keystone.example:5000", "username": "alice", "password": "from-env",
                               "project_id": "0123abcd", "project_name": "tenant-a", "user_domain_name": "Default",
                               "project_domain_id": "default"])
            #expect(p.regionName == "RegionOne")
            #expect(p.interface == "public")
            #expect(p.caCertFile == "/etc/ca.pem")
            #expect(p.verifyTLS == true, "OS_INSECURE must not turn off TLS verification of a named cloud")
            #expect(p.apiVersions == ["compute": "2.70"])
            // Where each value came from, for error messages; never the value itself.
            #expect(p.origin == "clouds.yaml \(path) + OS_PASSWORD, OS_PROJECT_DOMAIN_ID, OS_CACERT, OS_COMPUTE_API_VERSION")
            #expect(!p.origin.contains("from-env"))

            // OS_CLOUD picks the cloud the same way, and the variables apply over it.
            let viaCloud = loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path, "OS_CLOUD": "openstack", "OS_PASSWORD": "pw2"])
            #expect(try viaCloud.load(cloud: viaCloud.defaultCloudName()!).auth["password"] == "pw2")
            // Empty variables are not values.
            #expect(try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path, "OS_PASSWORD": ""]).load(cloud: "openstack").auth["password"] == nil)
        }
    }

    @Test func osCloudNamesTheDefaultCloud() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", Self.fullCloud)
            let l = loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path, "OS_CLOUD": "other", "OS_AUTH_URL": "https://env/v3"])
            #expect(l.defaultCloudName() == "other")
            #expect(try l.load(cloud: l.defaultCloudName()!).auth["username"] == "bob")
            #expect(loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).defaultCloudName() == nil)
            #expect(loader(dir, env: ["OS_CLOUD": ""]).defaultCloudName() == nil)
        }
    }

    // MARK: one-line errors

    @Test func missingAuthURL() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", "clouds:\n  a:\n    auth: {username: u, password: p, project_name: x}\n")
            let p = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "a")
            #expect(errorText { try p.validate() } == "clouds.yaml \(path): cloud 'a': auth.auth_url is missing")
        }
    }

    @Test func authURLThatIsNotAURL() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", "clouds:\n  a:\n    auth: {auth_url: keystone, username: u, password: p, project_name: x}\n")
            let p = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "a")
            #expect(errorText { try p.validate() } == "clouds.yaml \(path): cloud 'a': auth.auth_url 'keystone' is not a URL")
        }
    }

    @Test func missingPasswordUsernameProject() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  nopw:
                    auth: {auth_url: 'https://k/v3', username: u, project_name: x}
                  nouser:
                    auth: {auth_url: 'https://k/v3', password: p, project_name: x}
                  noproject:
                    auth: {auth_url: 'https://k/v3', username: u, password: p}
                  appcred:
                    auth_type: v3applicationcredential
                    auth: {auth_url: 'https://k/v3', application_credential_name: ac}
                  token:
                    auth_type: token
                    auth: {auth_url: 'https://k/v3'}
                  iface:
                    auth: {auth_url: 'https://k/v3', username: u, password: p, project_id: x}
                    interface: private
                """)
            let l = loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path])
            let o = "clouds.yaml \(path)"
            #expect(errorText { try l.load(cloud: "nopw").validate() } == "\(o): cloud 'nopw': auth.password is missing")
            #expect(errorText { try l.load(cloud: "nouser").validate() } == "\(o): cloud 'nouser': auth.username (or auth.user_id) is missing")
            #expect(errorText { try l.load(cloud: "noproject").validate() }
                == "\(o): cloud 'noproject': auth.project_name (or auth.project_id) is missing")
            #expect(errorText { try l.load(cloud: "appcred").validate() }
                == "\(o): cloud 'appcred': auth.username (or auth.user_id) is missing (needed with application_credential_name)")
            #expect(errorText { try l.load(cloud: "token").validate() } == "\(o): cloud 'token': auth.token is missing")
            #expect(errorText { try l.load(cloud: "iface").validate() }
                == "\(o): cloud 'iface': interface 'private' is not one of public, internal, admin")
        }
    }

    @Test func unknownCloudListsTheKnownOnes() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", Self.fullCloud)
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "staging") }
                == "clouds.yaml \(path): cloud 'staging' not found (known: other, prod)")
            let empty = try dir.write("empty.yaml", "clouds: {}\n")
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": empty]).load(cloud: "x") }
                == "clouds.yaml \(empty): cloud 'x' not found (known: none)")
        }
    }

    @Test(.enabled(if: !FileManager.default.fileExists(atPath: "/etc/openstack/clouds.yaml"), "a system clouds.yaml exists"))
    func noCloudsYamlAnywhere() throws {
        try withTempDir { dir in
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": dir.path + "/missing.yaml"]).load(cloud: "prod") }
                == "cloud 'prod': no clouds.yaml found (looked in \(dir.path)/missing.yaml, \(dir.path)/cwd/clouds.yaml, "
                + "\(dir.path)/home/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)")
            // envvars without OS_AUTH_URL is looked up in clouds.yaml like any other name
            #expect(errorText { _ = try loader(dir).load(cloud: "envvars") }?.hasPrefix("cloud 'envvars': no clouds.yaml found") == true)
        }
    }

    @Test func unsupportedAuthType() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", "clouds:\n  sso:\n    auth_type: v3oidcpassword\n    auth: {auth_url: 'https://k/v3'}\n")
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path]).load(cloud: "sso") }
                == "clouds.yaml \(path): cloud 'sso': auth_type 'v3oidcpassword' is not supported (use password, v3applicationcredential or token)")
            #expect(errorText { _ = try loader(dir, env: ["OS_AUTH_URL": "https://k/v3", "OS_AUTH_TYPE": "v2password"]).load(cloud: "envvars") }
                == "OS_* environment variables: cloud 'envvars': auth_type 'v2password' is not supported (use password, v3applicationcredential or token)")
        }
    }

    @Test("connect_retries is read as openstacksdk reads it, and refused unless a whole number from 0 to 100")
    func connectRetries() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  patient:
                    auth: {auth_url: 'https://k:5000/v3', username: u, password: p, project_name: x}
                    connect_retries: 12
                  plain:
                    auth: {auth_url: 'https://k:5000/v3', username: u, password: p, project_name: x}
                  odd:
                    auth: {auth_url: 'https://k:5000/v3', username: u, password: p, project_name: x}
                    connect_retries: -1
                """)
            let l = loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path])
            #expect(try l.load(cloud: "patient").connectRetries == 12)
            #expect(try l.load(cloud: "plain").connectRetries == nil)
            #expect(errorText { _ = try l.load(cloud: "odd") } == "clouds.yaml \(path): cloud 'odd': connect_retries -1 is not a whole number from 0 to 100")
        }
    }

    @Test func identityV2IsRefused() throws {
        try withTempDir { dir in
            let path = try dir.write("clouds.yaml", """
                clouds:
                  old:
                    auth: {auth_url: 'https://k:5000/v2.0', username: u, password: p, project_name: x}
                    identity_api_version: 2
                  older:
                    auth: {auth_url: 'https://k:5000/v2.0', username: u, password: p, project_name: x}
                    identity_api_version: '2.0'
                """)
            let l = loader(dir, env: ["OS_CLIENT_CONFIG_FILE": path])
            #expect(errorText { _ = try l.load(cloud: "old") }
                == "clouds.yaml \(path): cloud 'old': identity_api_version 2 is not supported; Keystone v3 is required")
            #expect(errorText { _ = try l.load(cloud: "older") }
                == "clouds.yaml \(path): cloud 'older': identity_api_version 2 is not supported; Keystone v3 is required")
            #expect(errorText { _ = try loader(dir, env: ["OS_AUTH_URL": "https://k/v2.0", "OS_IDENTITY_API_VERSION": "2"]).load(cloud: "envvars") }
                == "OS_* environment variables: OS_IDENTITY_API_VERSION 2 is not supported; Keystone v3 is required")
        }
    }

    @Test func malformedAndOddFiles() throws {
        try withTempDir { dir in
            let bad = try dir.write("bad.yaml", "clouds:\n  a: [unclosed\n")
            let t = errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": bad]).load(cloud: "a") }
            #expect(t?.hasPrefix("clouds.yaml \(bad): malformed YAML at line ") == true)
            #expect(t?.contains("\n") == false)
            let noClouds = try dir.write("noclouds.yaml", "foo: 1\n")
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": noClouds]).load(cloud: "a") }
                == "clouds.yaml \(noClouds): key 'clouds' is missing")
            let empty = try dir.write("blank.yaml", "\n")
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": empty]).load(cloud: "a") }
                == "clouds.yaml \(empty): file is empty or not a mapping")
            let vendor = try dir.write("vendor.yaml", "clouds:\n  v:\n    profile: vexxhost\n    auth: {username: u}\n")
            #expect(errorText { _ = try loader(dir, env: ["OS_CLIENT_CONFIG_FILE": vendor]).load(cloud: "v") }
                == "clouds.yaml \(vendor): cloud 'v': vendor 'profile' is not supported; put auth_url and region in the entry")
        }
    }

    @Test func serviceTypeAliases() {
        #expect(ServiceType.canonical("volume") == "block-storage")
        #expect(ServiceType.canonical("volumev3") == "block-storage")
        #expect(ServiceType.canonical("block_storage") == "block-storage")
        #expect(ServiceType.canonical("networking") == "network")
        #expect(ServiceType.canonical("compute") == "compute")
        #expect(ServiceType.catalogAliases("block-storage") == ["block-storage", "volumev3", "volume", "block-store"])
        #expect(ServiceType.all == ["identity", "compute", "network", "image", "block-storage"])
    }
}
