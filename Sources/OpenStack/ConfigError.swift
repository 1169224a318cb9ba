/// A configuration mistake: one line that names the file, the cloud and the key. Every layer
/// throws it (clouds.yaml here, the migration variables, the conversion host settings, the
/// commands); the OpenStack client is the lowest module that needs it.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
