"""Per-sample re-weighting of any registered loss: the part of AFL that knows
nothing of head families or critics (docs/afl.md, "Design").

**Per-sample protocol.** The base loss of each sample is

- ``base_loss.per_sample(*inputs) * base_loss.loss_weight`` when the base
  loss has a ``per_sample`` method taking its ``forward``'s arguments and
  returning ``[B]`` without ``loss_weight`` (this project's losses);
- otherwise the base loss's own ``forward`` on each sample as a batch of
  one, vectorised with ``torch.func.vmap`` (MMPose's losses). Only
  ``vmap``'s own limitations (data-dependent control flow, ``.item()``,
  an op without a batching rule) fall back, with a warning, to a Python
  loop over the samples; an error of the loss itself is raised.

For a base loss that is a mean (or a sum) over the batch of per-sample
terms, the mean (sum) of these values is the batch loss, so with equal
weights the re-weighted loss is the base loss exactly.
"""
import warnings
from typing import Optional

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_map


def finite_difficulty(difficulty: Tensor) -> Tensor:
    """``difficulty`` [B] with each non-finite value replaced by the mean of
    the finite ones, or by 1 when none is finite: such a sample counts as
    of average difficulty and never makes the weights of the batch NaN.

    Args:
        difficulty (Tensor): Per-sample difficulties [B].

    Returns:
        Tensor: Finite difficulties [B].
    """
    finite = difficulty.isfinite()
    mean = torch.where(finite, difficulty, 0).sum() / finite.sum()
    fill = torch.where(finite.any(), mean, torch.ones_like(mean))
    return torch.where(finite, difficulty, fill)


def normalized_weights(difficulty: Tensor) -> Tensor:
    """``difficulty / mean(difficulty)``: weights of mean 1, so that the
    re-weighting moves weight between the samples of a batch but leaves
    the loss scale alone; all-zero difficulties (or an empty batch) give
    equal weights 1, never NaN.

    Args:
        difficulty (Tensor): Finite, non-negative difficulties [B].

    Returns:
        Tensor: The weights [B].
    """
    mean = difficulty.mean()
    return torch.where(mean > 0, difficulty / mean,
                       torch.ones_like(difficulty))


def effective_sample_size(weights: Tensor) -> Tensor:
    """Kish's effective sample size of per-sample weights as a fraction of
    the batch, ``(sum w)^2 / (B sum w^2)``: 1 for equal weights, 1/B when
    one sample has all the weight; 0 when all weights are 0 or the batch is
    empty. Computed in float64, so tiny weights do not underflow.

    Args:
        weights (Tensor): Non-negative weights [B].

    Returns:
        Tensor: A float64 scalar in [0, 1].
    """
    weights = weights.double()
    squares = weights.pow(2).sum()
    return torch.where(squares > 0,
                       weights.sum()**2 / (weights.numel() * squares),
                       squares.new_zeros(()))


class ReweightedLoss(nn.Module):
    """A base loss computed per sample (module docstring) and re-weighted by
    a detached per-sample difficulty::

        w_b  = difficulty_b / mean_b'(difficulty_b')   normalize_weights
               difficulty_b                            otherwise
        loss = loss_weight * reduce_b(stopgrad(w_b) * L_b)

    with ``reduce`` the base loss's own batch reduction (``'mean'`` or
    ``'sum'``, given by the subclass). A non-finite difficulty counts as the
    batch's mean (:func:`finite_difficulty`). A base loss with a
    ``regularization()`` method has it added once, weighted neither by
    difficulty nor by ``loss_weight`` (as the base loss itself adds it).

    A subclass implements :meth:`sample_difficulty` and a ``forward`` with
    its head's signature that calls :meth:`reweighted`.

    Args:
        base_loss (dict): Config of the wrapped registered loss.
        normalize_weights (bool): Divide the weights by their batch mean.
            Defaults to ``True``
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def __init__(self,
                 base_loss: dict,
                 normalize_weights: bool = True,
                 loss_weight: float = 1.) -> None:
        super().__init__()
        if not isinstance(normalize_weights, bool):
            raise ValueError(f'{type(self).__name__}: `normalize_weights` '
                             f'must be True or False, got '
                             f'{normalize_weights!r}')
        self.base_loss = MODELS.build(base_loss)
        self.normalize_weights = normalize_weights
        self.loss_weight = loss_weight
        # the last training batch: difficulty, weight, per-sample losses
        # and the context (for the critic hook and the optional difficulty
        # recorder); references, no copies
        self.last_samples: Optional[dict] = None
        self._use_loop = False

    def sample_difficulty(self, losses: Tensor, *context) -> Tensor:
        """The difficulty [B] of each sample (non-finite values allowed:
        they become the batch mean), computed without gradient from the
        detached per-sample ``losses`` and the ``context`` given to
        :meth:`reweighted`."""
        raise NotImplementedError

    def per_sample_losses(self, *inputs, **kwargs) -> Tensor:
        """The base loss of each sample [B] with its ``loss_weight``, by the
        per-sample protocol of the module docstring; inputs as the base
        loss's ``forward`` takes them, batch first."""
        base = self.base_loss
        if hasattr(base, 'per_sample'):
            return base.per_sample(*inputs, **kwargs) * base.loss_weight
        names = list(kwargs)
        tensors = tuple(inputs) + tuple(kwargs.values())

        def one_sample(*sample):
            batch_of_one = tree_map(
                lambda a: a if a is None else a.unsqueeze(0), sample)
            split = len(batch_of_one) - len(names)
            return base(*batch_of_one[:split],
                        **dict(zip(names, batch_of_one[split:])))

        def loop() -> Tensor:
            batch = tree_flatten(tensors)[0][0].shape[0]
            return torch.stack([
                one_sample(
                    *tree_map(lambda a: a if a is None else a[b], tensors))
                for b in range(batch)
            ])

        if self._use_loop:
            return loop()
        try:
            in_dims = tuple(
                tree_map(lambda a: 0, a) if a is not None else None
                for a in tensors)
            return torch.func.vmap(one_sample, in_dims=in_dims)(*tensors)
        except torch.cuda.OutOfMemoryError:
            raise
        except RuntimeError as error:
            losses = loop()  # an error of the loss itself is raised here
            warnings.warn(
                f'{type(self).__name__}: {type(base).__name__} cannot be '
                f'vectorised with torch.func.vmap ({error}); computing '
                'it sample by sample in a Python loop')
            self._use_loop = True
            return losses

    def reweighted(self,
                   reduction: str,
                   inputs: tuple,
                   kwargs: Optional[dict] = None,
                   context: tuple = ()) -> Tensor:
        """The re-weighted loss of a batch (class docstring).

        Args:
            reduction (str): The base loss's batch reduction, ``'mean'`` or
                ``'sum'``.
            inputs (tuple): The base loss's positional inputs, batch first.
            kwargs (dict, optional): Its keyword inputs. Defaults to
                ``None``
            context (tuple): Passed on to :meth:`sample_difficulty`.
                Defaults to ``()``
        """
        kwargs = kwargs or {}
        if self.training:
            self.last_samples = None
        first = tree_flatten(inputs)[0][0]
        batch = first.shape[0]
        # an empty batch (whose mean would be NaN): no per-sample losses,
        # but still a graph to back-propagate the zero loss through
        losses = self.per_sample_losses(*inputs, **kwargs) if batch else \
            first.flatten(1).sum(1)
        # the weights are computed in float32 even under autocast
        with torch.no_grad(), torch.autocast(first.device.type, enabled=False):
            difficulty = finite_difficulty(
                self.sample_difficulty(losses.detach(), *context).float())
            weight = normalized_weights(difficulty) \
                if self.normalize_weights else difficulty
        if self.training and batch:
            self.last_samples = dict(
                difficulty=difficulty,
                weight=weight,
                losses=losses.detach(),
                context=tree_map(
                    lambda a: a.detach()
                    if isinstance(a, Tensor) else a, context))
        loss = (weight.to(losses.dtype) * losses).sum()
        if reduction == 'mean':
            loss = loss / max(batch, 1)
        loss = loss * self.loss_weight
        if hasattr(self.base_loss, 'regularization'):
            loss = loss + self.base_loss.regularization()
        return loss
