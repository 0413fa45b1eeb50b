"""Exploratory probe (issue 3): can the tiny Qwen2 LLM answer the synthetic questions from a *text* description?

Trains a fresh LLM (from a config) on description + question -> answer and prints held-out accuracy per
question type every 1,000 steps. Not part of the default recipe; it measures the text ceiling that the media
path cannot beat.

    python benchmarks/text_lookup_probe.py MODE STEPS LR LAYERS [THREADS]
    MODE: free (VALOR-style captions) | struct (fixed slots: position instrument loudness timing)
    env: QF=1 question before the description; HEADS, KV attention heads; SEG=1 learned segment embedding
         added to question tokens
"""
import sys, time, json, torch, numpy as np, torch.nn.functional as F
from collections import defaultdict
from transformers import Qwen2Config, Qwen2ForCausalLM
from tokcom.training.data.synthetic_avqa import generate_split, describe_scene, INSTRUMENTS
from tokcom.modeling.processing_tokcom import TokComProcessor
torch.set_num_threads(int(sys.argv[5]) if len(sys.argv)>5 else 2); torch.manual_seed(0)
mode, steps, lr, layers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
from tokcom.defaults import default_model_path
tok = TokComProcessor.from_pretrained(default_model_path()).tokenizer  # the default's word tokenizer
POS=("left","middle","right","off")
GAIN=("softly","plays","loudly")
WHEN=("silent","throughout","beginning","end")
def structured(inst, iv, gl):
    out=[]
    for p in range(4):
        if inst[p] < 0 or (p==3 and iv[3]==0): out.append(f"{POS[p]} no no no ."); continue
        out.append(f"{POS[p]} {INSTRUMENTS[inst[p]]} {GAIN[gl[p]] if iv[p] else 'no'} {WHEN[iv[p]]} .")
    return " ".join(out)
def data(split):
    scenes, rows = generate_split(split, 12000, 500, 1000, seed=0, questions_only=True)
    desc = describe_scene if mode=="free" else structured
    caps = [desc(*scenes.layout(r["scene_index"])) for r in rows]
    import os
    QF=os.environ.get("QF")=="1"
    prompts = [(r["question"] + " " + c) if QF else (c + " " + r["question"]) for c, r in zip(caps, rows)]
    enc = tok(prompts, padding=True, return_tensors="pt", padding_side="left")
    ans = torch.tensor([tok.convert_tokens_to_ids(tok.tokenize(r["anser"]))[0] for r in rows])
    unk = (ans == tok.unk_token_id).sum().item() if tok.unk_token_id is not None else 0
    types = [" ".join(json.loads(r["type"])) for r in rows]
    qlen = torch.tensor([len(tok.tokenize(r["question"])) for r in rows])
    L = enc["input_ids"].shape[1]
    seg = (torch.arange(L)[None, :] >= (L - qlen)[:, None]).long()
    return enc["input_ids"], enc["attention_mask"], ans, types, unk, seg
Xtr, Mtr, Atr, _, u1, Str = data("train"); Xte, Mte, Ate, Tte, u2, Ste = data("test")
print("unk", u1, u2, "len", Xtr.shape, Xte.shape, flush=True)
cfg = Qwen2Config(vocab_size=256, hidden_size=128, intermediate_size=256, num_hidden_layers=layers, num_attention_heads=int(__import__("os").environ.get("HEADS",4)), num_key_value_heads=int(__import__("os").environ.get("KV",2)), tie_word_embeddings=True, pad_token_id=0)
m = Qwen2ForCausalLM(cfg)
SEG = __import__("os").environ.get("SEG") == "1"
segemb = torch.nn.Embedding(2, 128); torch.nn.init.normal_(segemb.weight, std=0.02)
opt = torch.optim.AdamW(list(m.parameters())+list(segemb.parameters()), lr=lr, weight_decay=0.01)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s+1)/300) * max(0.0, 0.5*(1+np.cos(np.pi*s/steps))))
g = torch.Generator().manual_seed(0)
def fwd(X, M, S):
    pos = (M.cumsum(1)-1).clamp_min(0)
    e = m.get_input_embeddings()(X) + (segemb(S) if SEG else 0)
    return m(inputs_embeds=e, attention_mask=M, position_ids=pos).logits[:, -1]
def evaluate():
    m.eval(); c=defaultdict(list)
    with torch.no_grad():
        for s in range(0, len(Xte), 500):
            pred = fwd(Xte[s:s+500], Mte[s:s+500], Ste[s:s+500]).argmax(-1)
            for i,(p,a) in enumerate(zip(pred.tolist(), Ate[s:s+500].tolist())): c[Tte[s+i]].append(p==a)
    m.train(); allc=[x for v in c.values() for x in v]
    return sum(allc)/len(allc), {k: round(sum(v)/len(v),2) for k,v in c.items()}
t=time.time()
for step in range(steps):
    idx = torch.randint(len(Xtr), (64,), generator=g)
    loss = F.cross_entropy(fwd(Xtr[idx], Mtr[idx], Str[idx]), Atr[idx])
    opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); sched.step()
    if (step+1) % 1000 == 0:
        acc, per = evaluate(); print(step+1, round(loss.item(),3), round(acc,3), f"{time.time()-t:.0f}s", per, flush=True)
