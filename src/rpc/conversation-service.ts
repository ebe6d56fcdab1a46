/**
 * ConversationService: thin handlers over the conversation engine (src/domain/conversations).
 * Each handler converts the request (proto defaults such as 0 = "not given"), calls
 * `ConversationManager`, and wraps the result. Errors are the domain's AgentdErrors, mapped by the
 * error interceptor (running a running conversation is FailedPrecondition with reason
 * CONVERSATION_ALREADY_RUNNING, which REST maps to 409).
 *
 * EventService.SendMessage and RespondToConfirmation belong to the conversation engine too:
 * `createConversationEventMethods` returns them for src/rpc/event-service.ts (its deps
 * `sendMessage` / `respondToConfirmation`).
 */
import type { ServiceImpl } from "@connectrpc/connect";
import { ConversationSortOrder } from "../../gen/agentd/v1/conversation_service_pb.js";
import type { ConversationService } from "../../gen/agentd/v1/conversation_service_pb.js";
import type { EventService } from "../../gen/agentd/v1/event_service_pb.js";
import type { ConversationManager, ConversationOrder } from "../domain/conversations/conversation-manager.js";

export interface ConversationServiceDeps {
  conversations: ConversationManager;
}

const ORDERS: Readonly<Record<ConversationSortOrder, ConversationOrder>> = {
  [ConversationSortOrder.UNSPECIFIED]: "created_at_desc",
  [ConversationSortOrder.CREATED_AT]: "created_at",
  [ConversationSortOrder.CREATED_AT_DESC]: "created_at_desc",
  [ConversationSortOrder.UPDATED_AT]: "updated_at",
  [ConversationSortOrder.UPDATED_AT_DESC]: "updated_at_desc",
};

export function createConversationService(deps: ConversationServiceDeps): ServiceImpl<typeof ConversationService> {
  const m = deps.conversations;
  return {
    async createConversation(req) {
      const res = await m.create({
        agent: req.agent,
        workspace: req.workspace,
        conversationId: req.conversationId,
        initialMessage: req.initialMessage === undefined ? undefined : { role: req.initialMessage.role, content: req.initialMessage.content },
        maxIterations: req.maxIterations,
        stuckDetection: req.stuckDetection,
        secrets: req.secrets,
        confirmationPolicy: req.confirmationPolicy,
        securityAnalyzer: req.securityAnalyzer,
        tags: req.tags,
        autotitle: req.autotitle,
        title: req.title,
      });
      return { conversation: res.conversation, created: res.created };
    },
    async getConversation(req) {
      return { conversation: await m.get(req.conversationId) };
    },
    async batchGetConversations(req) {
      const found = await m.batchGet(req.ids);
      return { conversations: found.map((conversation) => ({ conversation })) };
    },
    async searchConversations(req) {
      const page = await m.search({ pageSize: req.pageSize, pageToken: req.pageToken, status: req.status, order: ORDERS[req.sortOrder] ?? "created_at_desc" });
      return { items: page.items, nextPageToken: page.nextPageToken };
    },
    countConversations(req) {
      return { count: BigInt(m.count(req.status)) };
    },
    async updateConversation(req) {
      const replaceTags = req.replaceTags || Object.keys(req.tags).length > 0;
      await m.update(req.conversationId, { title: req.title, tags: replaceTags ? req.tags : undefined });
      return { success: true };
    },
    async deleteConversation(req) {
      await m.delete(req.conversationId);
      return { success: true };
    },
    async runConversation(req) {
      await m.run(req.conversationId);
      return { success: true };
    },
    async pauseConversation(req) {
      await m.pause(req.conversationId);
      return { success: true };
    },
    async interruptConversation(req) {
      await m.interrupt(req.conversationId);
      return { success: true };
    },
    async updateConversationSecrets(req) {
      await m.updateSecrets(req.conversationId, req.secrets);
      return { success: true };
    },
    async setConfirmationPolicy(req) {
      await m.setConfirmationPolicy(req.conversationId, req.policy);
      return { success: true };
    },
    async setSecurityAnalyzer(req) {
      await m.setSecurityAnalyzer(req.conversationId, req.securityAnalyzer);
      return { success: true };
    },
    async generateTitle(req) {
      return { title: await m.generateTitle(req.conversationId, req.maxLength) };
    },
    async askAgent(req) {
      return { response: await m.askAgent(req.conversationId, req.question) };
    },
    async condenseConversation(req) {
      await m.condense(req.conversationId);
      return { success: true };
    },
    async getAgentFinalResponse(req) {
      return { response: await m.agentFinalResponse(req.conversationId) };
    },
  };
}

type EventImpl = ServiceImpl<typeof EventService>;

/** EventService.SendMessage and RespondToConfirmation over the conversation engine. */
export function createConversationEventMethods(deps: ConversationServiceDeps): Pick<EventImpl, "sendMessage" | "respondToConfirmation"> {
  const m = deps.conversations;
  return {
    async sendMessage(req) {
      const seq = await m.sendMessage(req.conversationId, { role: req.role, content: req.content, run: req.run });
      return { success: true, seq };
    },
    async respondToConfirmation(req) {
      await m.respondToConfirmation(req.conversationId, req.accept, req.reason);
      return { success: true };
    },
  };
}
