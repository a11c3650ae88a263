import Foundation
import Testing
import TestSupport

/// `filesystems --all` on the CentOS LVM layout, checked against `lvs`/`vgs`/`pvs` on the same images.
@Suite struct FilesystemsLVMTests {
    @Test func lvmRowsMatchTheLVMTools() throws {
        let c = try LVMFixtures.centos()
        let result = try ImageMountBinary.run(["filesystems", "--all", "--csv", "-l", "--uuid"] + c.disks.flatMap { ["-a", $0] })
        #expect(result.status == 0, "\(result.stderr)")
        // Name,Type,VFS,Label,MBR,Size,Parent,UUID
        let rows = result.text.split(separator: "\n").dropFirst().map { Self.csvFields(String($0)) }
        func row(_ name: String, _ type: String) -> [String]? { rows.first { $0[0] == name && $0[1] == type } }

        let common = "--units b --nosuffix --reportformat json"
        func report(_ json: String, _ kind: String) throws -> [[String: String]] {
            let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            return ((object?["report"] as? [[String: Any]])?.first?[kind] as? [[String: String]]) ?? []
        }
        let (lvs, vgs, pvCount) = try c.builder.withLoops(c.pvs, readOnly: true) { loops in
            (try report(c.builder.lvm("lvs", "\(common) -o lv_name,lv_uuid,lv_size,lv_attr", loops: loops), "lv"),
             try report(c.builder.lvm("vgs", "\(common) -o vg_name,vg_uuid,vg_size", loops: loops), "vg"),
             try report(c.builder.lvm("pvs", "\(common) -o pv_name,pv_uuid,pv_size", loops: loops), "pv").count)
        }
        for lv in lvs where lv["lv_attr"]?.first == "-" {   // plain (linear/striped) volumes, visible
            let ours = try #require(row("/dev/centos/\(lv["lv_name"]!)", "lv"), "no row for \(lv["lv_name"]!)")
            #expect(ours[5] == lv["lv_size"] && ours[6] == "/dev/centos" && ours[7] == lv["lv_uuid"])
        }
        #expect(row("/dev/centos/snap", "lv") == nil, "snapshots are skipped")
        let vg = try #require(vgs.first)
        let ours = try #require(row("/dev/centos", "vg"))
        #expect(ours[5] == vg["vg_size"] && ours[7] == vg["vg_uuid"])
        #expect(ours[6] == "/dev/sda2,/dev/sdb")
        #expect(rows.filter { $0[1] == "pv" }.map(\.[0]) == ["/dev/sda2", "/dev/sdb"] && pvCount == 2)
        // Filesystems on LVs are listed as filesystems too.
        #expect(row("/dev/centos/root", "filesystem")?[2] == "ext4")
        #expect(row("/dev/centos/simple", "filesystem")?[3] == "SIMPLE")
    }

    /// virt-filesystems' spellings --logvols/--lvs, --volgroups/--vgs, --physvols/--pvs each
    /// select their rows; UUIDs are the ones lvs/vgs/pvs print, dashes included; --no-title
    /// drops the heading of --long.
    @Test func lvmSpellingsSelectRowsAndUUIDsAreDashedAsLVMPrintsThem() throws {
        let c = try LVMFixtures.centos()
        let drives = c.disks.flatMap { ["-a", $0] }
        let (lvs, vgs, pvs) = try c.builder.withLoops(c.pvs, readOnly: true) { loops in
            (try c.builder.lvm("lvs", "--noheadings -o lv_name,lv_uuid,lv_attr", loops: loops),
             try c.builder.lvm("vgs", "--noheadings -o vg_name,vg_uuid", loops: loops),
             try c.builder.lvm("pvs", "--noheadings -o pv_uuid", loops: loops))
        }
        func words(_ text: String) -> [[String]] {
            text.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }.filter { !$0.isEmpty }
        }
        let visibleLVs = words(lvs).filter { $0[2].first != "s" }   // the snapshot is not listed, its origin is
        for spellings in [["--logvols", "--lvs", "--logical-volumes"], ["--volgroups", "--vgs", "--volume-groups"],
                          ["--physvols", "--pvs", "--physical-volumes"]] {
            var outputs: [String] = []
            for flag in spellings {
                let result = try ImageMountBinary.run(["filesystems", flag, "-l", "--uuid", "--no-title", "--csv"] + drives)
                #expect(result.status == 0, "\(flag): \(result.stderr)")
                outputs.append(result.text)
            }
            #expect(Set(outputs).count == 1, "\(spellings) list the same rows")
            let rows = outputs[0].split(separator: "\n").map { Self.csvFields(String($0)) }
            #expect(!rows.contains { $0[0] == "Name" }, "--no-title drops the heading")
            switch spellings[0] {
            case "--logvols":
                #expect(rows.allSatisfy { $0[1] == "lv" } && rows.count == visibleLVs.count)
                for lv in visibleLVs {
                    #expect(rows.first { $0[0] == "/dev/centos/\(lv[0])" }?.last == lv[1], "uuid of \(lv[0])")
                }
            case "--volgroups":
                #expect(rows.map { [$0[0], $0.last ?? ""] } == words(vgs).map { ["/dev/" + $0[0], $0[1]] })
            default:
                #expect(rows.allSatisfy { $0[1] == "pv" } && Set(rows.compactMap(\.last)) == Set(words(pvs).map { $0[0] }))
            }
            // lvm's form: 6-4-4-4-4-4-6 characters between dashes.
            for row in rows { #expect(row.last?.split(separator: "-").map(\.count) == [6, 4, 4, 4, 4, 4, 6], "\(row)") }
        }
        // With the heading: the first line names the columns.
        let titled = try ImageMountBinary.check(["filesystems", "--vgs", "-l", "--csv"] + drives)
        #expect(titled.hasPrefix("Name,Type,Size,Parent\n"), "\(titled)")
    }

    /// Splits one CSV line (RFC 4180 quoting).
    static func csvFields(_ line: String) -> [String] {
        var fields: [String] = [], current = "", quoted = false, previous: Character? = nil
        for ch in line {
            if quoted {
                if ch == "\"" { quoted = false } else { current.append(ch) }
            } else if ch == "\"" {
                if previous == "\"" { current.append("\"") }
                quoted = true
            } else if ch == "," {
                fields.append(current); current = ""
            } else {
                current.append(ch)
            }
            previous = ch
        }
        return fields + [current]
    }
}
