import OpenStack
import Testing

@testable import Resources

@Suite("Value rules: types and ranges before any write")
struct ValueRuleTests {
    @Test("addresses and networks are parsed by the C library; a network contains what its prefix says")
    func addresses() {
        #expect(IPAddress("10.0.0.1")?.isV4 == true)
        #expect(IPAddress("fd00::1")?.isV4 == false)
        for bad in ["", "10.0.0", "10.0.0.256", "dns.example", "10.0.0.1/24", "::g"] { #expect(IPAddress(bad) == nil, "\(bad)") }
        #expect(CIDR("10.0.0.0/24")?.prefix == 24)
        for bad in ["10.0.0.0", "10.0.0.0/33", "fd00::/129", "10.0.0.0/-1", "10.0.0.0/2x", "/24"] { #expect(CIDR(bad) == nil, "\(bad)") }
        let net = CIDR("10.0.0.0/23")!
        #expect(net.contains(IPAddress("10.0.1.255")!))
        #expect(!net.contains(IPAddress("10.0.2.0")!))
        #expect(!net.contains(IPAddress("fd00::1")!))
        #expect(CIDR("0.0.0.0/0")!.contains(IPAddress("203.0.113.9")!))
        #expect(CIDR("fd00::/64")!.contains(IPAddress("fd00::abcd")!))
    }

    @Test("each rule says what is wrong in words, with the value")
    func problems() {
        #expect(ValueRule.int(68...65535).problem("abc") == #"is not a whole number: "abc""#)
        #expect(ValueRule.int(68...65535).problem(-5) == "is -5, out of range (68 to 65535)")
        #expect(ValueRule.int(68...65535).problem(.double(1e23)) == "is not a whole number: 1e+23")
        #expect(ValueRule.intIn([4, 6]).problem(.double(4.5)) == "is 4.5, not one of 4, 6")
        #expect(ValueRule.bool.problem("yes please") == #"is not a boolean (true or false): "yes please""#)
        #expect(ValueRule.description.problem(["a": 1]) == "is not a string (a mapping)")
        #expect(ValueRule.name.problem(.string(String(repeating: "x", count: 256))) == "has 256 characters (at most 255)")
        #expect(ValueRule.name.problem("a\nb") == nil)
        #expect(ValueRule.routes.problem([["destination": "10.0.0.0/8"]]) == "[0] has no nexthop")
        #expect(ValueRule.list(.ipAddress, max: 2).problem(["8.8.8.8", "1.1.1.1", "9.9.9.9"]) == "has 3 entries (at most 2)")
        #expect(ValueRule.cidr.problem(.null) == nil)
        #expect(ValueRule.macAddress.problem("fa:16:3e:0a:bc:FF") == nil)
        #expect(ValueRule.macAddress.problem("fa:16:3e:0a:bc") == #"is not a MAC address (like fa:16:3e:00:00:01): "fa:16:3e:0a:bc""#)
        #expect(ValueRule.macAddress.problem("fa:16:3e:0a:bc:zz") != nil)
        #expect(ValueRule.macAddress.problem("fa:16:3e:0a:b:c0f") != nil)
    }

    @Test("subnets: the family of the cidr, a gateway and pools inside it")
    func subnetCrossChecks() {
        func problems(_ params: JSONObject) -> [String] { SubnetKind.validate(ResourceRecord(type: SubnetKind.typeName, params: params)) }
        #expect(problems(["cidr": "10.0.0.0/24", "ip_version": 4, "gateway_ip": "10.0.0.1",
                          "allocation_pools": [["start": "10.0.0.10", "end": "10.0.0.20"]]]).isEmpty)
        #expect(problems(["cidr": "10.0.0.0/24", "ip_version": 6]) == ["params.cidr 10.0.0.0/24 is not an IPv6 network (params.ip_version 6)"])
        #expect(problems(["cidr": "10.0.0.0/24", "allocation_pools": [["start": "10.0.0.20", "end": "10.0.0.10"]]])
            == ["params.allocation_pools[0] starts after it ends"])
    }
}
