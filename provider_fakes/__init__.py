"""Faithful local fakes of the API-key providers (OpenAI, Anthropic, Gemini, OpenRouter), for the
tests of core/providers: each serves its real API's paths, authentication, request checks, error
bodies and (streamed) answer shapes, records what it received, and answers as scripted."""

from provider_fakes.anthropic import FakeAnthropic
from provider_fakes.base import FakeProvider
from provider_fakes.gemini import FakeGemini
from provider_fakes.openai import FakeOpenAI
from provider_fakes.openrouter import FakeOpenRouter

__all__ = ["FakeAnthropic", "FakeGemini", "FakeOpenAI", "FakeOpenRouter", "FakeProvider"]
