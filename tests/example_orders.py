"""An order defined outside mmgen (what a user's package would hold): 2 x 2 blocks of codes
as one group, blocks in raster order. Row j of block g is fed the code in row j of block g - 1
(start tokens for the first block), so a block's inputs only need earlier blocks."""

import torch

from mmgen.orders import Order
from mmgen.sequence import condition_and_groups_layout


class BlockOrder(Order):
    name = "example_orders:BlockOrder"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False,
                 block: int = 2):  # fmt: skip
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        gh, gw = self.token_layout.grid
        self.block, self.blocks = block, (gh // block, gw // block)
        # raster index of every code, block by block: (num_blocks, block^2)
        index = torch.arange(gh * gw).view(gh // block, block, gw // block, block)
        self.index = index.permute(0, 2, 1, 3).reshape(-1, block * block)
        rows, cols = self.index // gw, self.index % gw
        T = condition_length
        positions = torch.stack([torch.full_like(rows, T), T + rows, T + cols], -1).view(-1, 3)
        self.layout = condition_and_groups_layout(
            T, [block * block] * self.index.shape[0], positions, flat_positions=flat_positions
        )

    def config(self):
        return {"name": self.name, "block": self.block}

    def input_config(self):
        return {"kind": "token", "num_codes": self.token_layout.codebook_size}

    def head_config(self):
        return {"kind": "categorical", "num_codes": self.token_layout.codebook_size}

    def training_inputs(self, codes_BN):
        blocks = codes_BN[:, self.index]  # (B, num_blocks, block^2)
        start = torch.full_like(blocks[:, :1], self.token_layout.codebook_size)
        inputs = torch.cat([start, blocks[:, :-1]], dim=1)
        return inputs.flatten(1), blocks.flatten(1)

    def group_inputs(self, state, g):
        if g == 0:
            n = self.block * self.block
            return torch.full_like(state.codes[:, :n], self.token_layout.codebook_size)
        return state.codes[:, self.index[g - 1]]

    def take(self, state, g, sampled):
        state.codes[:, self.index[g]] = sampled
