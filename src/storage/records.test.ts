import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { BashEventRecordSchema, EventRecordSchema, SeqPointerSchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { decodeRecord, decodeSeqPointer, encodeRecord, encodeSeqPointer } from "./records.js";

describe("hot-path record encoders", () => {
  const numbers = [0, 1, 127, 128, 255, 300, 16_383, 16_384, 2 ** 31, 2 ** 32 + 5, 1_795_290_426_344, Number.MAX_SAFE_INTEGER];
  const bodies = [new Uint8Array(0), new Uint8Array([0]), new Uint8Array(127).fill(1), new Uint8Array(128).fill(2), new Uint8Array(70_000).fill(3)];

  it("write the same bytes as protobuf-es toBinary", () => {
    for (const n of numbers) {
      for (const body of bodies) {
        for (const [id, kind, other] of [["", "", ""], ["e-1", "ActionEvent", "agent"], ["x".repeat(128), "K", "s".repeat(127)]] as const) {
          const mine = encodeRecord({ id, seq: n, timestampMs: n, kind, field5: other, body });
          const event = toBinary(EventRecordSchema, create(EventRecordSchema, { id, seq: BigInt(n), timestampMs: BigInt(n), kind, source: other, body }));
          const bash = toBinary(BashEventRecordSchema, create(BashEventRecordSchema, { id, seq: BigInt(n), timestampMs: BigInt(n), kind, commandId: other, body }));
          expect(Buffer.from(mine).equals(Buffer.from(event))).toBe(true);
          expect(Buffer.from(mine).equals(Buffer.from(bash))).toBe(true);
          const { body: decoded, ...fields } = decodeRecord(mine);
          expect(fields).toEqual({ id, seq: n, timestampMs: n, kind, field5: other });
          expect(Buffer.from(decoded).equals(Buffer.from(body))).toBe(true);
          expect(decodeRecord(mine).field5).toBe(other);
        }
      }
      expect(Buffer.from(encodeSeqPointer(n)).equals(Buffer.from(toBinary(SeqPointerSchema, create(SeqPointerSchema, { seq: BigInt(n) }))))).toBe(true);
      expect(decodeSeqPointer(encodeSeqPointer(n))).toBe(n);
    }
  });

  it("decode as protobuf-es does, skipping unknown fields of every wire type", () => {
    const known = toBinary(EventRecordSchema, create(EventRecordSchema, { id: "é-1", seq: 7n, timestampMs: 1_795_290_426_344n, kind: "MessageEvent", source: "user", body: new Uint8Array([1, 2, 3]) }));
    const unknown = new BinaryWriter()
      .tag(9, WireType.Varint).uint64(12345n)
      .tag(10, WireType.Bit64).fixed64(1n)
      .tag(11, WireType.LengthDelimited).bytes(new Uint8Array([9, 9]))
      .tag(12, WireType.Bit32).fixed32(3)
      .tag(2, WireType.Varint).uint64(8n) // a repeated scalar: the last one wins
      .finish();
    const bytes = new Uint8Array([...known, ...unknown]);
    const reference = fromBinary(EventRecordSchema, bytes);
    const { body, ...fields } = decodeRecord(bytes);
    expect(fields).toEqual({ id: reference.id, seq: Number(reference.seq), timestampMs: Number(reference.timestampMs), kind: reference.kind, field5: reference.source });
    expect([...body]).toEqual([...reference.body]);
    expect(fields.seq).toBe(8);
  });

  it("reject bytes that are not a record", () => {
    const valid = encodeRecord({ id: "e-1", seq: 300, timestampMs: 5, kind: "ActionEvent", field5: "agent", body: new Uint8Array(40).fill(7) });
    // Cut inside a field (every cut except at a field boundary, which leaves a valid shorter record).
    const boundaries = new Set([0, 5, 8, 10, 23, 30, valid.length]);
    for (let cut = 1; cut < valid.length; cut++) {
      if (!boundaries.has(cut)) expect(() => decodeRecord(valid.subarray(0, cut)), `cut at ${cut}`).toThrow();
    }
    expect(() => decodeRecord(new Uint8Array([(2 << 3) | WireType.LengthDelimited, 1, 0]))).toThrow(/wire type/); // seq as bytes
    expect(() => decodeRecord(new Uint8Array([(1 << 3) | WireType.LengthDelimited, 2, 0xc3, 0x28]))).toThrow(); // invalid UTF-8
    expect(() => decodeRecord(new Uint8Array([(7 << 3) | WireType.StartGroup]))).toThrow();
    expect(() => decodeRecord(new Uint8Array([0xff, 0xff, 0xff, 0x07]))).toThrow();
    expect(() => decodeSeqPointer(new Uint8Array([0x0a, 0x05, 0x01]))).toThrow();
  });
});
