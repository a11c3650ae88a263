import CXML2

/// virt-inspector's --xpath (guestfs-tools `inspector/inspector.c`, `do_xpath`): an XPath query
/// run by libxml2 over an XML document, the result printed as virt-inspector prints it. A node
/// set prints each node as its own formatted document without the XML declaration; a string
/// prints as it is, with a newline added unless it ends in one; a number or boolean prints as
/// `xmlXPathCastToString` gives it, plus a newline.
enum XPathQuery {
    /// XML documents larger than this are refused (the inspection documents are a few KiB).
    static let maxInput = 64 << 20

    /// Loads libxml2 (Sources/CXML2: it is not linked), before the sandbox is entered.
    static func loadLibrary() throws {
        var error: UnsafePointer<CChar>?
        guard cxml2_load(&error) == 0 else {
            throw CLIError(message: "--xpath: " + (error.map { String(cString: $0) } ?? "libxml2 could not be loaded"))
        }
    }

    static func evaluate(_ query: String, on xml: [UInt8]) throws -> String {
        try loadLibrary()
        guard xml.count <= maxInput else { throw CLIError(message: "--xpath: XML input larger than 64 MiB") }
        // XML_PARSE_NOBLANKS as virt-inspector, so the nodes are indented afresh; NONET: never
        // fetch anything.
        let options = Int32(XML_PARSE_NOBLANKS.rawValue | XML_PARSE_NONET.rawValue | XML_PARSE_NOERROR.rawValue | XML_PARSE_NOWARNING.rawValue)
        guard let doc = xml.withUnsafeBufferPointer({ buffer in
            buffer.withMemoryRebound(to: CChar.self) { cxml2_xmlReadMemory($0.baseAddress, Int32($0.count), nil, "utf8", options) }
        }) else {
            throw CLIError(message: "--xpath: unable to parse XML")
        }
        defer { cxml2_xmlFreeDoc(doc) }
        guard let context = cxml2_xmlXPathNewContext(doc) else { throw CLIError(message: "--xpath: unable to create new XPath context") }
        defer { cxml2_xmlXPathFreeContext(context) }
        guard let object = cxml2_xmlXPathEvalExpression(query, context) else {
            throw CLIError(message: "--xpath: unable to evaluate XPath expression")
        }
        defer { cxml2_xmlXPathFreeObject(object) }

        switch object.pointee.type {
        case XPATH_NODESET:
            guard let nodes = object.pointee.nodesetval, let table = nodes.pointee.nodeTab else { return "" }
            var out = ""
            for i in 0 ..< Int(max(0, nodes.pointee.nodeNr)) {
                guard let node = table[i] else { continue }
                out += try dump(node, of: doc) + "\n"
            }
            return out
        case XPATH_STRING:
            let text = object.pointee.stringval.map { String(cString: $0) } ?? ""
            return text.isEmpty || text.hasSuffix("\n") ? text : text + "\n"
        default:
            guard let cast = cxml2_xmlXPathCastToString(object) else { return "\n" }
            defer { cxml2_free(cast) }
            return String(cString: cast) + "\n"
        }
    }

    /// One node serialized with indentation (`xmlNodeDump`, format 1), as `xmlSaveDoc` with
    /// XML_SAVE_FORMAT writes a document holding a copy of it.
    private static func dump(_ node: xmlNodePtr, of doc: xmlDocPtr) throws -> String {
        guard let buffer = cxml2_xmlBufferCreate() else { throw CLIError(message: "--xpath: out of memory") }
        defer { cxml2_xmlBufferFree(buffer) }
        guard cxml2_xmlNodeDump(buffer, doc, node, 0, 1) >= 0, let content = cxml2_xmlBufferContent(buffer) else {
            throw CLIError(message: "--xpath: cannot serialize a node of the result")
        }
        return String(cString: content)
    }
}
