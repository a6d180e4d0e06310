/**
 * The subset of the ONNX protobuf schema (`onnx.proto3`, IR version 7 and
 * later) that denograd reads and writes, as a protobufjs JSON descriptor, and
 * the decoded message types. Field numbers follow the public ONNX spec;
 * fields left out here (sparse tensors, training info, functions, …) are
 * skipped by the decoder.
 *
 * @module
 */
import protobuf from "npm:protobufjs@7.6.6";

// repeated scalars are packed, as proto3 writes them
const packed = { packed: true };

/**
 * The ONNX schema subset as a protobufjs JSON descriptor (package `onnx`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import protobuf from "npm:protobufjs@7.6.6";
 * import { ONNX_SCHEMA } from "./schema.ts";
 * const model = protobuf.Root.fromJSON(ONNX_SCHEMA).lookupType("onnx.ModelProto");
 * assert.equal(model.fields.graph!.id, 7); // ModelProto.graph, as in onnx.proto
 * ```
 */
export const ONNX_SCHEMA: protobuf.INamespace = {
  nested: {
    onnx: {
      nested: {
        AttributeProto: {
          fields: {
            name: { type: "string", id: 1 },
            refAttrName: { type: "string", id: 21 },
            docString: { type: "string", id: 13 },
            type: { type: "AttributeType", id: 20 },
            f: { type: "float", id: 2 },
            i: { type: "int64", id: 3 },
            s: { type: "bytes", id: 4 },
            t: { type: "TensorProto", id: 5 },
            g: { type: "GraphProto", id: 6 },
            floats: { rule: "repeated", type: "float", id: 7, options: packed },
            ints: { rule: "repeated", type: "int64", id: 8, options: packed },
            strings: { rule: "repeated", type: "bytes", id: 9 },
            tensors: { rule: "repeated", type: "TensorProto", id: 10 },
            graphs: { rule: "repeated", type: "GraphProto", id: 11 },
          },
          nested: {
            AttributeType: {
              values: {
                UNDEFINED: 0,
                FLOAT: 1,
                INT: 2,
                STRING: 3,
                TENSOR: 4,
                GRAPH: 5,
                FLOATS: 6,
                INTS: 7,
                STRINGS: 8,
                TENSORS: 9,
                GRAPHS: 10,
                SPARSE_TENSOR: 11,
                SPARSE_TENSORS: 12,
                TYPE_PROTO: 13,
                TYPE_PROTOS: 14,
              },
            },
          },
        },
        ValueInfoProto: {
          fields: {
            name: { type: "string", id: 1 },
            type: { type: "TypeProto", id: 2 },
            docString: { type: "string", id: 3 },
          },
        },
        NodeProto: {
          fields: {
            input: { rule: "repeated", type: "string", id: 1 },
            output: { rule: "repeated", type: "string", id: 2 },
            name: { type: "string", id: 3 },
            opType: { type: "string", id: 4 },
            domain: { type: "string", id: 7 },
            attribute: { rule: "repeated", type: "AttributeProto", id: 5 },
            docString: { type: "string", id: 6 },
          },
        },
        ModelProto: {
          fields: {
            irVersion: { type: "int64", id: 1 },
            opsetImport: { rule: "repeated", type: "OperatorSetIdProto", id: 8 },
            producerName: { type: "string", id: 2 },
            producerVersion: { type: "string", id: 3 },
            domain: { type: "string", id: 4 },
            modelVersion: { type: "int64", id: 5 },
            docString: { type: "string", id: 6 },
            graph: { type: "GraphProto", id: 7 },
            metadataProps: { rule: "repeated", type: "StringStringEntryProto", id: 14 },
          },
        },
        StringStringEntryProto: {
          fields: {
            key: { type: "string", id: 1 },
            value: { type: "string", id: 2 },
          },
        },
        GraphProto: {
          fields: {
            node: { rule: "repeated", type: "NodeProto", id: 1 },
            name: { type: "string", id: 2 },
            initializer: { rule: "repeated", type: "TensorProto", id: 5 },
            docString: { type: "string", id: 10 },
            input: { rule: "repeated", type: "ValueInfoProto", id: 11 },
            output: { rule: "repeated", type: "ValueInfoProto", id: 12 },
            valueInfo: { rule: "repeated", type: "ValueInfoProto", id: 13 },
          },
        },
        TensorProto: {
          fields: {
            dims: { rule: "repeated", type: "int64", id: 1, options: packed },
            dataType: { type: "int32", id: 2 },
            floatData: { rule: "repeated", type: "float", id: 4, options: packed },
            int32Data: { rule: "repeated", type: "int32", id: 5, options: packed },
            stringData: { rule: "repeated", type: "bytes", id: 6 },
            int64Data: { rule: "repeated", type: "int64", id: 7, options: packed },
            name: { type: "string", id: 8 },
            docString: { type: "string", id: 12 },
            rawData: { type: "bytes", id: 9 },
            externalData: { rule: "repeated", type: "StringStringEntryProto", id: 13 },
            dataLocation: { type: "int32", id: 14 },
            doubleData: { rule: "repeated", type: "double", id: 10, options: packed },
            uint64Data: { rule: "repeated", type: "uint64", id: 11, options: packed },
          },
          nested: {
            DataType: {
              values: {
                UNDEFINED: 0,
                FLOAT: 1,
                UINT8: 2,
                INT8: 3,
                UINT16: 4,
                INT16: 5,
                INT32: 6,
                INT64: 7,
                STRING: 8,
                BOOL: 9,
                FLOAT16: 10,
                DOUBLE: 11,
                UINT32: 12,
                UINT64: 13,
              },
            },
          },
        },
        TensorShapeProto: {
          fields: {
            dim: { rule: "repeated", type: "Dimension", id: 1 },
          },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ["dimValue", "dimParam"] } },
              fields: {
                dimValue: { type: "int64", id: 1 },
                dimParam: { type: "string", id: 2 },
                denotation: { type: "string", id: 3 },
              },
            },
          },
        },
        TypeProto: {
          oneofs: { value: { oneof: ["tensorType"] } },
          fields: {
            tensorType: { type: "Tensor", id: 1 },
            denotation: { type: "string", id: 6 },
          },
          nested: {
            Tensor: {
              fields: {
                elemType: { type: "int32", id: 1 },
                shape: { type: "TensorShapeProto", id: 2 },
              },
            },
          },
        },
        OperatorSetIdProto: {
          fields: {
            domain: { type: "string", id: 1 },
            version: { type: "int64", id: 2 },
          },
        },
      },
    },
  },
};

/**
 * ONNX element types denograd reads (`TensorProto.DataType`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DataType } from "./schema.ts";
 * assert.equal(DataType.FLOAT, 1); // onnx.proto: FLOAT = 1, INT64 = 7
 * assert.equal(DataType.INT64, 7);
 * ```
 */
export const DataType = { FLOAT: 1, INT32: 6, INT64: 7, DOUBLE: 11 } as const;

/**
 * ONNX attribute kinds (`AttributeProto.AttributeType`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AttrType } from "./schema.ts";
 * assert.deepEqual([AttrType.INT, AttrType.INTS], [2, 7]); // as in onnx.proto
 * ```
 */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

/** A tensor as decoded (int64 fields as numbers). */
export interface TensorMsg {
  /** Tensor name (initializers) or empty. */
  name?: string;
  /** Shape. */
  dims?: number[];
  /** Element type, a `DataType` value. */
  dataType?: number;
  /** Little-endian elements. */
  rawData?: Uint8Array;
  /** Float elements when not raw. */
  floatData?: number[];
  /** Int32 elements when not raw. */
  int32Data?: number[];
  /** Int64 elements when not raw. */
  int64Data?: number[];
  /** Double elements when not raw. */
  doubleData?: number[];
  /** Set to 1 when the data lives in another file. */
  dataLocation?: number;
}

/** A node attribute as decoded. */
export interface AttributeMsg {
  /** Attribute name. */
  name: string;
  /** `AttrType` value. */
  type?: number;
  /** Float value. */
  f?: number;
  /** Integer value. */
  i?: number;
  /** String value (UTF-8 bytes). */
  s?: Uint8Array;
  /** Tensor value. */
  t?: TensorMsg;
  /** Float list. */
  floats?: number[];
  /** Integer list. */
  ints?: number[];
}

/** A node as decoded. */
export interface NodeMsg {
  /** Input value names; an empty string is an omitted optional input. */
  input?: string[];
  /** Output value names. */
  output?: string[];
  /** Node name (may be empty). */
  name?: string;
  /** Operator name, e.g. `Conv`. */
  opType?: string;
  /** Operator-set domain; empty for the default ONNX domain. */
  domain?: string;
  /** Attributes. */
  attribute?: AttributeMsg[];
}

/** A graph value's name and type. */
export interface ValueInfoMsg {
  /** Value name. */
  name: string;
  /** Its type: a tensor type with element type and shape. */
  type?: {
    tensorType?: {
      elemType?: number;
      shape?: { dim?: { dimValue?: number; dimParam?: string }[] };
    };
  };
}

/** A graph as decoded. */
export interface GraphMsg {
  /** Nodes in topological order. */
  node?: NodeMsg[];
  /** Graph name. */
  name?: string;
  /** Constant tensors (the parameters). */
  initializer?: TensorMsg[];
  /** Graph inputs (older files list initializers here too). */
  input?: ValueInfoMsg[];
  /** Graph outputs. */
  output?: ValueInfoMsg[];
}

/** A model as decoded. */
export interface ModelMsg {
  /** IR version. */
  irVersion?: number;
  /** Operator sets the graph binds to. */
  opsetImport?: { domain?: string; version?: number }[];
  /** Producer name. */
  producerName?: string;
  /** Producer version. */
  producerVersion?: string;
  /** The graph. */
  graph?: GraphMsg;
  /** Free-form name/value pairs. */
  metadataProps?: { key: string; value: string }[];
}

const root = protobuf.Root.fromJSON(ONNX_SCHEMA);
const modelType = root.lookupType("onnx.ModelProto");

/**
 * Serialises a model message to ONNX bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeModel, encodeModel } from "./schema.ts";
 * const bytes = encodeModel({ irVersion: 8, producerName: "denograd", opsetImport: [{ domain: "", version: 17 }] });
 * assert.deepEqual(decodeModel(bytes).opsetImport, [{ domain: "", version: 17 }]);
 * assert.throws(() => encodeModel({ irVersion: "8" as unknown as number }), /^Error: Cannot write ONNX: irVersion/);
 * ```
 */
export function encodeModel(model: ModelMsg): Uint8Array {
  const err = modelType.verify(model);
  if (err) throw new Error(`Cannot write ONNX: ${err}`);
  return modelType.encode(modelType.fromObject(model)).finish();
}

/**
 * Parses ONNX bytes into a plain model message (int64 fields as numbers).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeModel, encodeModel } from "./schema.ts";
 * const m = decodeModel(encodeModel({ irVersion: 8, producerName: "denograd" }));
 * assert.equal(m.irVersion, 8); // a number, not a Long
 * assert.equal(m.producerName, "denograd");
 * ```
 */
export function decodeModel(bytes: Uint8Array): ModelMsg {
  const msg = modelType.decode(bytes);
  return modelType.toObject(msg, { longs: Number, enums: Number, arrays: false }) as ModelMsg;
}
