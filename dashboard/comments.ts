/**
 * A sweep's comments (the dashboard on AWS, where users and teams exist): the list, oldest first,
 * and a form to add one. Bodies are plain text and only ever set as text nodes (`h`), so a
 * comment holding `<script>` shows those characters.
 */
import { CommentList, CommentView } from "#core/api.js";
import { request } from "./api.js";
import { ago, announce, h, replace } from "./dom.js";
import { errorText } from "./forms.js";

export function commentsPanel(sweepId: string): HTMLElement {
  const path = `/api/sweeps/${encodeURIComponent(sweepId)}/comments`;
  const list = h("ol", { class: "comments", "aria-live": "polite" });
  const status = h("p", { class: "muted", role: "status" }, "loading comments…");
  const body = h("textarea", { id: "comment-body", rows: "3", maxlength: "4000", required: true });
  const post = h("button", { type: "submit" }, "Post comment");

  const item = (c: CommentView) =>
    h(
      "li",
      { class: "comment" },
      h("p", { class: "muted" }, `${c.author} · ${ago(c.createdAt)}`),
      h("p", { class: "comment-body" }, c.body),
    );

  async function load(): Promise<void> {
    try {
      const { comments } = await request(CommentList, path);
      replace(list, ...comments.map(item));
      status.textContent = comments.length ? "" : "No comments yet.";
    } catch (e) {
      status.textContent = errorText(e);
    }
  }

  const form = h(
    "form",
    {
      onsubmit: (e: Event) => {
        e.preventDefault();
        void (async () => {
          post.disabled = true;
          try {
            const comment = await request(CommentView, path, { method: "POST", body: { body: body.value } });
            list.append(item(comment));
            body.value = "";
            status.textContent = "";
            announce("comment posted");
          } catch (error) {
            status.textContent = errorText(error);
          } finally {
            post.disabled = false;
          }
        })();
      },
    },
    h("label", { for: body.id }, "Add a comment"),
    body,
    post,
  );
  void load();
  return h(
    "section",
    { class: "panel", "aria-labelledby": "comments-title" },
    h("h2", { id: "comments-title" }, "Comments"),
    list,
    status,
    form,
  );
}
