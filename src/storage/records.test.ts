import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BashEventRecordSchema, EventRecordSchema, SeqPointerSchema } from "../../gen/agentd/storage/v1/storage_pb.js";
import { decodeBashEventRecord, decodeEventRecord, decodeSeqPointer, encodeRecord, encodeSeqPointer } from "./records.js";

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
          const { body: decoded, ...fields } = decodeEventRecord(mine);
          expect(fields).toEqual({ id, seq: n, timestampMs: n, kind, field5: other });
          expect(Buffer.from(decoded).equals(Buffer.from(body))).toBe(true);
          expect(decodeBashEventRecord(mine).field5).toBe(other);
        }
      }
      expect(Buffer.from(encodeSeqPointer(n)).equals(Buffer.from(toBinary(SeqPointerSchema, create(SeqPointerSchema, { seq: BigInt(n) }))))).toBe(true);
      expect(decodeSeqPointer(encodeSeqPointer(n))).toBe(n);
    }
  });

  it("reject bytes that are not a record", () => {
    expect(() => decodeEventRecord(new Uint8Array([0xff, 0xff, 0xff, 0x07]))).toThrow();
    expect(() => decodeSeqPointer(new Uint8Array([0x0a, 0x05, 0x01]))).toThrow();
  });
});
